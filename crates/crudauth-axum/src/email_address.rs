//! The email-address check behind every `email` body field.
//!
//! ```text
//! // Crate-private, so this block is not compiled as a doctest.
//! assert_eq!(check(" Ada@Example.COM "), Ok(()));
//! assert_eq!(
//!     check("a..b@example.com"),
//!     Err("An email address cannot have two periods in a row.".to_owned())
//! );
//! ```
//!
//! It follows the Python reference, which validates with pydantic's `EmailStr`, that is the
//! `email-validator` package (2.x) with deliverability checks off: the same rules, checked in
//! the same order, giving the same reasons word for word. The reason lands in the 422 entry as
//! `"msg": "value is not a valid email address: <reason>"` and `"ctx": {"reason": <reason>}`.
//!
//! In order, an address is refused when:
//!
//! - it is longer than 2048 characters, or contains a carriage return or line feed (pydantic's
//!   own checks, made before anything is trimmed); surrounding whitespace is then trimmed;
//! - it has no `@` outside quotes, or a malformed `Name <address>` form;
//! - the part before the `@` is empty, longer than 64 characters, has characters outside
//!   RFC 5322 `atext` (letters, digits, ``!#$%&'*+-/=?^_`{|}~``) plus any non-ASCII character,
//!   has unsafe characters (controls, format characters, non-ASCII spaces, a combining mark
//!   first), starts or ends with a period or has two in a row, or is quoted (`"a b"@x.com`);
//! - the part after the `@` is empty, a bracketed IP address (`a@[127.0.0.1]`), longer than
//!   253 characters, has characters other than letters, digits, `-` and `.` (non-ASCII letters
//!   and digits are allowed), starts or ends with a period or hyphen, has two periods in a row or
//!   a period next to a hyphen, has `--` in the third and fourth place of a label other than
//!   `xn--`, has a label longer than 63 characters (after Punycode encoding for international
//!   labels), has no period, does not end in an ASCII letter, or is or lies under a special-use
//!   name: `arpa`, `invalid`, `local`, `localhost`, `onion`, `test`;
//! - the whole address is longer than 254 bytes as UTF-8, as given or with the domain in its
//!   Punycode (`xn--`) form.
//!
//! Two deliberate differences make it stricter than the reference: a part before the `@` over
//! 64 characters is refused (`email-validator` checks that only in its "strict" mode), and the
//! display-name form `Alice <al@example.com>` is refused with the reason `email-validator` gives
//! for it when display names are not allowed (pydantic strips the name and accepts it).
//!
//! Simplifications, all in rare inputs: internationalized domains are not put through full
//! IDNA 2008 / UTS #46. Labels are lower-cased and full-width ASCII and ideographic full stops
//! are folded, as UTS #46 does, but there is no Unicode NFC normalization, no bidi or contextual
//! rules, and a non-ASCII label character passes when Rust calls it alphanumeric or it is in a
//! common combining-mark block (IDNA's PVALID set is close to that); `xn--` labels given in ASCII
//! are not decoded and checked. Unicode categories come from Rust's `char` methods and short
//! tables here, so a few rare format or unassigned code points the reference refuses pass, and
//! a character shown by name in a reason falls back to its `U+XXXX` form when it is not in the
//! short name table below. Inside brackets, an invalid IPv6 address gets a reason without
//! Python's parser detail.

use std::fmt::Write as _;

/// pydantic refuses longer input before `email-validator` sees it.
const INPUT_MAX_LENGTH: usize = 2048;
/// RFC 3696 errata 1690 / RFC 5321 4.5.3.1.3, in UTF-8 bytes.
const EMAIL_MAX_LENGTH: usize = 254;
/// RFC 5321 4.5.3.1.1, in characters (checked by `email-validator` only in strict mode).
const LOCAL_PART_MAX_LENGTH: usize = 64;
/// RFC 1035 2.3.4 less the final dot and root label.
const DOMAIN_MAX_LENGTH: usize = 253;
/// RFC 1035 2.3.1.
const LABEL_MAX_LENGTH: usize = 63;
/// IANA special-use names that cannot have globally deliverable mail (`email-validator`'s list).
const SPECIAL_USE_DOMAIN_NAMES: [&str; 6] =
    ["arpa", "invalid", "local", "localhost", "onion", "test"];
/// RFC 5322 3.2.3 `atext`, less letters and digits.
const ATEXT_SYMBOLS: &str = "!#$%&'*+-/=?^_`{|}~";

/// Checks an address as the reference's `EmailStr` does; the error is the reason to report.
pub(crate) fn check(input: &str) -> Result<(), String> {
    if input.chars().count() > INPUT_MAX_LENGTH {
        return Err(format!(
            "Length must not exceed {INPUT_MAX_LENGTH} characters"
        ));
    }
    if input.contains(['\r', '\n']) {
        return fail("Carriage return and line feed characters are not allowed");
    }
    let address = trimmed(input);

    let parts = split_address(address)?;
    check_local_part(&parts.local_unquoted, parts.quoted)?;
    if parts.quoted {
        return fail("Quoting the part before the @-sign is not allowed here.");
    }
    if parts.domain.is_empty() {
        return fail("There must be something after the @-sign.");
    }
    if parts.domain.starts_with('[') && parts.domain.ends_with(']') {
        // As in Python, a lone "[" both starts and ends with a bracket and holds nothing.
        let inner = parts.domain.get(1..parts.domain.len() - 1).unwrap_or("");
        check_domain_literal(inner)?;
        return fail("A bracketed IP address after the @-sign is not allowed here.");
    }
    let domain = check_domain_name(parts.domain)?;
    check_length(parts.local, &parts.local_unquoted, parts.domain, &domain)?;
    if parts.display_name {
        return fail(
            "A display name and angle brackets around the email address are not permitted here.",
        );
    }
    Ok(())
}

fn fail<T>(reason: &str) -> Result<T, String> {
    Err(reason.to_owned())
}

// ---------------------------------------------------------------------------------------------
// Splitting into display name, local part and domain.

struct Parts<'a> {
    /// Whether the `Name <address>` form (or bare `<address>`) was used.
    display_name: bool,
    /// The part before the `@` as written, quotes included.
    local: &'a str,
    /// The same with quotes and backslash escapes removed.
    local_unquoted: String,
    quoted: bool,
    domain: &'a str,
}

fn split_address(address: &str) -> Result<Parts<'_>, String> {
    let (left, right) = split_at_unquoted(address, &['@', '<'])?;
    let (display_name, local, domain) = if right.starts_with('<') {
        let (name, name_quoted) = unquote(left.trim_end_matches(is_python_space))?;
        if !name_quoted {
            let bad = sorted_display(
                name.chars()
                    .filter(|&c| c == '.' || (c != ' ' && !is_atext(c))),
            );
            if !bad.is_empty() {
                return Err(format!(
                    "The display name contains invalid characters when not quoted: {bad}."
                ));
            }
        }
        check_unsafe_chars(&name, true)?;
        if !right.contains('>') {
            return fail("An open angle bracket at the start of the email address has to be followed by a close angle bracket at the end.");
        }
        let right = right.trim_end_matches(' ');
        let Some(spec) = right.strip_suffix('>').and_then(|r| r.strip_prefix('<')) else {
            return fail("There can't be anything after the email address.");
        };
        let (local, domain) = split_at_unquoted(spec, &['@'])?;
        (true, local, domain)
    } else {
        (false, left, right)
    };
    let domain = domain.strip_prefix('@').unwrap_or(domain);
    let (local_unquoted, quoted) = unquote(local)?;
    Ok(Parts {
        display_name,
        local,
        local_unquoted,
        quoted,
        domain,
    })
}

/// Splits before the first of `specials` that is not inside quotes; the right part keeps it.
fn split_at_unquoted<'a>(text: &'a str, specials: &[char]) -> Result<(&'a str, &'a str), String> {
    let mut inside_quote = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        // `<` with a following U+0338 (among any combining marks, which NFC reorders)
        // normalizes to `≮`, which is not an angle bracket.
        if c == '<'
            && text
                .get(i + 1..)
                .unwrap_or("")
                .chars()
                .take_while(|&n| is_combining_mark(n))
                .any(|n| n == '\u{338}')
        {
            continue;
        }
        if inside_quote {
            if c == '\\' && !escaped {
                escaped = true;
            } else {
                if c == '"' && !escaped {
                    inside_quote = false;
                }
                escaped = false;
            }
        } else if c == '"' {
            inside_quote = true;
        } else if specials.contains(&c) {
            return Ok(text.split_at(i));
        }
    }
    if text.contains('＠') {
        return fail("The email address has the \"full-width\" at-sign (@) character instead of a regular at-sign.");
    }
    if text.contains('﹫') {
        return fail("The email address has the \"small commercial at\" character instead of a regular at-sign.");
    }
    fail("An email address must have an @-sign.")
}

/// Removes surrounding quotes and backslash escapes; says whether the text was quoted.
fn unquote(text: &str) -> Result<(String, bool), String> {
    let mut value = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if quoted {
            if escaped {
                value.push(c);
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                let rest = text.get(i + 1..).unwrap_or("");
                if !rest.is_empty() {
                    let shown: Vec<String> = rest.chars().map(display_char).collect();
                    return Err(format!(
                        "Extra character(s) found after close quote: {}",
                        shown.join(", ")
                    ));
                }
                break;
            } else {
                value.push(c);
            }
        } else if i == 0 && c == '"' {
            quoted = true;
        } else {
            value.push(c);
        }
    }
    Ok((value, quoted))
}

// ---------------------------------------------------------------------------------------------
// The part before the @-sign.

/// Checks the unquoted local part (RFC 5322 dot-atom, RFC 6531 for non-ASCII, RFC 5321 quoted
/// string).
fn check_local_part(local: &str, quoted: bool) -> Result<(), String> {
    if local.is_empty() {
        return fail("There must be something before the @-sign.");
    }
    let length = local.chars().count();
    if length > LOCAL_PART_MAX_LENGTH {
        return Err(format!(
            "The email address is too long before the @-sign {}.",
            too_many(length, LOCAL_PART_MAX_LENGTH)
        ));
    }
    let dot_atom = |allowed: fn(char) -> bool| {
        local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(allowed))
    };
    if dot_atom(is_atext) {
        return Ok(());
    }
    if dot_atom(is_atext_intl) {
        return check_unsafe_chars(local, false);
    }
    if quoted {
        // Quoted strings may hold any printable character; the caller refuses quoting itself.
        let bad = sorted_display(
            local
                .chars()
                .filter(|&c| c.is_ascii() && !(' '..='~').contains(&c)),
        );
        if !bad.is_empty() {
            return Err(format!(
                "The email address contains invalid characters in quotes before the @-sign: {bad}."
            ));
        }
        return check_unsafe_chars(local, true);
    }
    let bad = sorted_display(local.chars().filter(|&c| c != '.' && !is_atext_intl(c)));
    if !bad.is_empty() {
        return Err(format!(
            "The email address contains invalid characters before the @-sign: {bad}."
        ));
    }
    check_dot_atom(
        local,
        "An email address cannot start with a {}.",
        "An email address cannot have a {} immediately before the @-sign.",
        false,
    )?;
    fail("The email address contains invalid characters before the @-sign.")
}

/// RFC 5322 3.2.3: no period first or last, nor two in a row; for host names, likewise hyphens.
fn check_dot_atom(text: &str, start: &str, end: &str, hostname: bool) -> Result<(), String> {
    let starts = |what: &str| Err(start.replace("{}", what));
    let ends = |what: &str| Err(end.replace("{}", what));
    if text.ends_with('.') {
        return ends("period");
    }
    if text.starts_with('.') {
        return starts("period");
    }
    if text.contains("..") {
        return fail("An email address cannot have two periods in a row.");
    }
    if hostname {
        if text.ends_with('-') {
            return ends("hyphen");
        }
        if text.starts_with('-') {
            return starts("hyphen");
        }
        if text.contains(".-") || text.contains("-.") {
            return fail("An email address cannot have a period and a hyphen next to each other.");
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The part after the @-sign.

/// Checks `[...]` after the @-sign; a valid address there is still refused by the caller.
fn check_domain_literal(inner: &str) -> Result<(), String> {
    if !inner.is_empty() && inner.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return parse_ipv4(inner).map_err(|e| {
            format!("The address in brackets after the @-sign is not valid: It is not an IPv4 address ({e}) or is missing an address literal tag.")
        });
    }
    if let Some(tag) = inner.get(..5) {
        if tag.eq_ignore_ascii_case("ipv6:") {
            // `get(5..)` cannot fail after `get(..5)` succeeded; an empty rest is invalid anyway.
            let address = inner.get(5..).unwrap_or("");
            return match address.parse::<std::net::Ipv6Addr>() {
                Ok(_) => Ok(()),
                Err(_) => fail("The IPv6 address in brackets after the @-sign is not valid."),
            };
        }
    }
    if !inner.contains(':') {
        return fail("The part after the @-sign in brackets is not an IPv4 address and has no address literal tag.");
    }
    let bad = sorted_display(
        inner
            .chars()
            .filter(|&c| !('\u{21}'..='\u{FA}').contains(&c)),
    );
    if !bad.is_empty() {
        return Err(format!(
            "The part after the @-sign contains invalid characters in brackets: {bad}."
        ));
    }
    fail("The part after the @-sign contains an invalid address literal tag in brackets.")
}

/// Python's `ipaddress.IPv4Address` parse, with its error text (input is digits and dots).
fn parse_ipv4(text: &str) -> Result<(), String> {
    let octets: Vec<&str> = text.split('.').collect();
    if octets.len() != 4 {
        return Err(format!("Expected 4 octets in '{text}'"));
    }
    for octet in octets {
        let problem = if octet.is_empty() {
            "Empty octet not permitted".to_owned()
        } else if octet.len() > 3 {
            format!("At most 3 characters permitted in '{octet}'")
        } else if octet != "0" && octet.starts_with('0') {
            format!("Leading zeros are not permitted in '{octet}'")
        } else {
            match octet.parse::<u16>() {
                Ok(value) if value > 255 => format!("Octet {value} (> 255) not permitted"),
                _ => continue,
            }
        };
        return Err(format!("{problem} in '{text}'"));
    }
    Ok(())
}

/// A domain name that passed: its ASCII (Punycode) form and its normalized Unicode form.
struct Domain {
    ascii: String,
    unicode: String,
}

/// Checks a domain name (RFC 952 / RFC 1123 host names, RFC 5890 for international labels).
fn check_domain_name(original: &str) -> Result<Domain, String> {
    let length = original.chars().count();
    if length > DOMAIN_MAX_LENGTH {
        return Err(format!(
            "The email address is too long after the @-sign {}.",
            too_many(length, DOMAIN_MAX_LENGTH)
        ));
    }
    let invalid = |c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.' || !c.is_ascii());
    let bad = sorted_display(original.chars().filter(|&c| invalid(c)));
    if !bad.is_empty() {
        return Err(format!(
            "The part after the @-sign contains invalid characters: {bad}."
        ));
    }
    check_unsafe_chars(original, false)?;
    let bad = sorted_display(original.chars().filter(|&c| decomposes_to_dot(c)));
    if !bad.is_empty() {
        return Err(format!(
            "The part after the @-sign contains invalid characters: {bad}."
        ));
    }

    let domain = uts46_remap(original);
    let bad = sorted_display(domain.chars().filter(|&c| invalid(c)));
    if !bad.is_empty() {
        return Err(format!(
            "The part after the @-sign contains invalid characters after Unicode normalization: {bad}."
        ));
    }
    check_dot_atom(
        &domain,
        "An email address cannot have a {} immediately after the @-sign.",
        "An email address cannot end with a {}.",
        true,
    )?;
    for label in domain.split('.') {
        let mut chars = label.chars();
        let head: String = chars.by_ref().take(2).collect();
        let dashes: String = chars.take(2).collect();
        if dashes == "--" && !head.eq_ignore_ascii_case("xn") {
            return fail("An email address cannot have two letters followed by two dashes immediately after the @-sign or after a period, except Punycode.");
        }
    }

    let ascii = if domain.is_ascii() {
        domain.clone()
    } else {
        let labels = domain
            .split('.')
            .map(|label| {
                to_alabel(label).map_err(|e| format!("The part after the @-sign is invalid ({e})."))
            })
            .collect::<Result<Vec<_>, _>>()?;
        labels.join(".")
    };
    if ascii.len() > DOMAIN_MAX_LENGTH {
        // Only an international domain can get here: it grew when Punycode-encoded.
        let diff = ascii.len() - DOMAIN_MAX_LENGTH;
        let s = if diff == 1 { "" } else { "s" };
        return Err(format!("The email address is too long after the @-sign ({diff} byte{s} too many after IDNA encoding)."));
    }
    for label in ascii.split('.') {
        if label.len() > LABEL_MAX_LENGTH {
            return Err(format!(
                "After the @-sign, periods cannot be separated by so many characters {}.",
                too_many(label.len(), LABEL_MAX_LENGTH)
            ));
        }
    }
    if !ascii.contains('.') {
        return fail("The part after the @-sign is not valid. It should have a period.");
    }
    if !ascii.ends_with(|c: char| c.is_ascii_alphabetic()) {
        return fail(
            "The part after the @-sign is not valid. It is not within a valid top-level domain.",
        );
    }
    let special = SPECIAL_USE_DOMAIN_NAMES.iter().any(|name| {
        ascii == *name
            || ascii
                .strip_suffix(name)
                .is_some_and(|rest| rest.ends_with('.'))
    });
    if special {
        return fail("The part after the @-sign is a special-use or reserved name that cannot be used with email.");
    }
    // The reference decodes `xn--` labels back to Unicode for its normalized form; given in
    // ASCII they are kept as they are here.
    Ok(Domain {
        ascii,
        unicode: domain,
    })
}

/// The part of UTS #46 mapping that matters for common input: lower case, full-width ASCII
/// to ASCII, ideographic and other full stops to `.`.
fn uts46_remap(domain: &str) -> String {
    domain
        .chars()
        .map(|c| match c {
            '\u{3002}' | '\u{FF0E}' | '\u{FF61}' => '.',
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFF01 + 0x21).unwrap_or(c),
            _ => c,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

/// Characters UTS #46 would expand to text with a period, like `⒈` ("1.").
fn decomposes_to_dot(c: char) -> bool {
    matches!(c, '\u{2488}'..='\u{249B}' | '\u{1F100}')
}

/// IDNA `alabel`: an ASCII label unchanged, or `xn--` and its Punycode form.
fn to_alabel(label: &str) -> Result<String, String> {
    let alabel = if label.is_ascii() {
        label.to_owned()
    } else {
        if label.chars().skip(2).take(2).eq("--".chars()) {
            return fail("Label has disallowed hyphens in 3rd and 4th position");
        }
        if label.chars().next().is_some_and(is_combining_mark) {
            return fail("Label begins with an illegal combining character");
        }
        for (position, c) in label.chars().enumerate() {
            let pvalid = c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || c == '-'
                || (!c.is_ascii() && (c.is_alphanumeric() || is_combining_mark(c)));
            if !pvalid {
                // The IDNA library's own notation: at least four digits, never padded to eight.
                return Err(format!(
                    "Codepoint U+{:04X} at position {} of '{label}' not allowed",
                    u32::from(c),
                    position + 1
                ));
            }
        }
        format!("xn--{}", punycode(label))
    };
    if alabel.len() > LABEL_MAX_LENGTH {
        return fail("Label too long");
    }
    Ok(alabel)
}

/// RFC 3492 Punycode encoding of one label, by the `idna` crate (already in the build through
/// `url`). It refuses only input far longer than any domain name, which then stays as given and
/// fails the label length check.
fn punycode(label: &str) -> String {
    idna::punycode::encode_str(label).unwrap_or_else(|| label.to_owned())
}

// ---------------------------------------------------------------------------------------------
// The whole address.

/// The 254-byte limit, on the address as given, normalized, and with the ASCII domain.
fn check_length(
    local: &str,
    local_unquoted: &str,
    original_domain: &str,
    domain: &Domain,
) -> Result<(), String> {
    let original = format!("{local}@{original_domain}");
    let bytes = original.len();
    if bytes > EMAIL_MAX_LENGTH {
        let diff = bytes - EMAIL_MAX_LENGTH;
        let chars = original.chars().count();
        let reason = if chars == bytes {
            too_many(chars, EMAIL_MAX_LENGTH)
        } else {
            // At least this many characters must go: the widest character's bytes each.
            let widest = original.chars().map(char::len_utf8).max().unwrap_or(1);
            let fewest = (diff / widest).max(1);
            let s = if diff > 1 { "s" } else { "" };
            if fewest == diff {
                format!("({diff} character{s} too many)")
            } else {
                format!("({fewest}-{diff} character{s} too many)")
            }
        };
        return Err(format!("The email address is too long {reason}."));
    }
    for (address, when) in [
        (
            format!("{local_unquoted}@{}", domain.unicode),
            "after normalization",
        ),
        (
            format!("{local_unquoted}@{}", domain.ascii),
            "when the part after the @-sign is converted to IDNA ASCII",
        ),
    ] {
        if address.len() > EMAIL_MAX_LENGTH {
            let diff = address.len() - EMAIL_MAX_LENGTH;
            let s = if diff > 1 { "s" } else { "" };
            return Err(format!(
                "The email address is too long {when} ({diff} byte{s} too many)."
            ));
        }
    }
    Ok(())
}

/// `(N characters too many)`.
fn too_many(length: usize, limit: usize) -> String {
    let diff = length - limit;
    let s = if diff > 1 { "s" } else { "" };
    format!("({diff} character{s} too many)")
}

// ---------------------------------------------------------------------------------------------
// Characters.

/// The address as checked and kept: without the leading and trailing characters Python's
/// `str.strip` removes (Rust's `trim` leaves `\x1c`–`\x1f`, which would keep an address that
/// the check saw without them: found by the `email` fuzz target).
pub(crate) fn trimmed(input: &str) -> &str {
    input.trim_matches(is_python_space)
}

/// Python's `str.isspace`, which `str.strip` trims.
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1C}'..='\u{1F}').contains(&c)
}

/// RFC 5322 `atext` (ASCII only).
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || ATEXT_SYMBOLS.contains(c)
}

/// `atext` plus every non-ASCII character (RFC 6531 3.3).
fn is_atext_intl(c: char) -> bool {
    is_atext(c) || !c.is_ascii()
}

/// Common combining-mark blocks (Unicode category M).
fn is_combining_mark(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}' | '\u{0483}'..='\u{0489}' | '\u{0591}'..='\u{05BD}'
        | '\u{0610}'..='\u{061A}' | '\u{064B}'..='\u{065F}' | '\u{1AB0}'..='\u{1AFF}'
        | '\u{1DC0}'..='\u{1DFF}' | '\u{20D0}'..='\u{20FF}' | '\u{3099}'..='\u{309A}'
        | '\u{FE20}'..='\u{FE2F}')
}

/// Unicode format characters (category Cf).
fn is_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{0600}'..='\u{0605}' | '\u{061C}' | '\u{06DD}' | '\u{070F}' | '\u{180E}'
        | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}' | '\u{110BD}'
        | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}' | '\u{E0001}'
        | '\u{E0020}'..='\u{E007F}')
}

/// Private-use code points and noncharacters (categories Co and part of Cn).
fn is_private_or_nonchar(c: char) -> bool {
    let n = u32::from(c);
    matches!(n, 0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD | 0xFDD0..=0xFDEF)
        || n & 0xFFFE == 0xFFFE
}

/// Letters, numbers, punctuation and symbols (categories L, N, P, S), which are shown quoted.
fn is_shown_as_is(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_graphic();
    }
    !(c.is_control()
        || c.is_whitespace()
        || is_format(c)
        || is_private_or_nonchar(c)
        || is_combining_mark(c))
}

/// Refuses controls, format and private-use characters, line separators, spaces unless
/// `allow_space`, and a combining mark in first place.
fn check_unsafe_chars(text: &str, allow_space: bool) -> Result<(), String> {
    let mut bad: Vec<char> = text
        .chars()
        .enumerate()
        .filter(|&(i, c)| {
            if c.is_whitespace() && !c.is_control() {
                // Spaces (Zs) are allowed in quoted strings; line and paragraph separators never.
                !allow_space || matches!(c, '\u{2028}' | '\u{2029}')
            } else if is_combining_mark(c) {
                i == 0
            } else {
                c.is_control() || is_format(c) || is_private_or_nonchar(c)
            }
        })
        .map(|(_, c)| c)
        .collect();
    if bad.is_empty() {
        return Ok(());
    }
    bad.sort_unstable();
    bad.dedup();
    let shown: Vec<String> = bad.into_iter().map(display_char).collect();
    Err(format!(
        "The email address contains unsafe characters: {}.",
        shown.join(", ")
    ))
}

/// The characters as `email-validator` lists them: each shown once, sorted by how it is shown.
fn sorted_display(chars: impl Iterator<Item = char>) -> String {
    let mut shown: Vec<String> = chars.map(display_char).collect();
    shown.sort_unstable();
    shown.dedup();
    shown.join(", ")
}

/// A character for a reason: quoted if visible (as Python's `repr`), else its Unicode name, else
/// `U+XXXX`.
fn display_char(c: char) -> String {
    if c == '\\' {
        return "\"\\\"".to_owned();
    }
    if c == '\'' {
        return "\"'\"".to_owned();
    }
    if is_shown_as_is(c) {
        return format!("'{c}'");
    }
    match char_name(c) {
        Some(name) => name.to_owned(),
        None => code_point(c),
    }
}

/// `U+0009`, `U+0001F600`: four hex digits below U+FFFF, else eight.
fn code_point(c: char) -> String {
    let n = u32::from(c);
    let mut out = String::from("U+");
    // Writing to a String cannot fail.
    let _ = if n < 0xFFFF {
        write!(out, "{n:04X}")
    } else {
        write!(out, "{n:08X}")
    };
    out
}

/// Unicode names of the invisible characters people paste into address fields.
fn char_name(c: char) -> Option<&'static str> {
    Some(match c {
        ' ' => "SPACE",
        '\u{00A0}' => "NO-BREAK SPACE",
        '\u{00AD}' => "SOFT HYPHEN",
        '\u{0300}' => "COMBINING GRAVE ACCENT",
        '\u{0301}' => "COMBINING ACUTE ACCENT",
        '\u{0308}' => "COMBINING DIAERESIS",
        '\u{0338}' => "COMBINING LONG SOLIDUS OVERLAY",
        '\u{1680}' => "OGHAM SPACE MARK",
        '\u{2000}' => "EN QUAD",
        '\u{2001}' => "EM QUAD",
        '\u{2002}' => "EN SPACE",
        '\u{2003}' => "EM SPACE",
        '\u{2004}' => "THREE-PER-EM SPACE",
        '\u{2005}' => "FOUR-PER-EM SPACE",
        '\u{2006}' => "SIX-PER-EM SPACE",
        '\u{2007}' => "FIGURE SPACE",
        '\u{2008}' => "PUNCTUATION SPACE",
        '\u{2009}' => "THIN SPACE",
        '\u{200A}' => "HAIR SPACE",
        '\u{200B}' => "ZERO WIDTH SPACE",
        '\u{200C}' => "ZERO WIDTH NON-JOINER",
        '\u{200D}' => "ZERO WIDTH JOINER",
        '\u{200E}' => "LEFT-TO-RIGHT MARK",
        '\u{200F}' => "RIGHT-TO-LEFT MARK",
        '\u{2028}' => "LINE SEPARATOR",
        '\u{2029}' => "PARAGRAPH SEPARATOR",
        '\u{202A}' => "LEFT-TO-RIGHT EMBEDDING",
        '\u{202B}' => "RIGHT-TO-LEFT EMBEDDING",
        '\u{202C}' => "POP DIRECTIONAL FORMATTING",
        '\u{202D}' => "LEFT-TO-RIGHT OVERRIDE",
        '\u{202E}' => "RIGHT-TO-LEFT OVERRIDE",
        '\u{202F}' => "NARROW NO-BREAK SPACE",
        '\u{205F}' => "MEDIUM MATHEMATICAL SPACE",
        '\u{2060}' => "WORD JOINER",
        '\u{3000}' => "IDEOGRAPHIC SPACE",
        '\u{FEFF}' => "ZERO WIDTH NO-BREAK SPACE",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::check;

    const OK: &str = "";
    const SPECIAL: &str =
        "The part after the @-sign is a special-use or reserved name that cannot be used with email.";
    const NO_PERIOD: &str = "The part after the @-sign is not valid. It should have a period.";
    const NOT_TLD: &str =
        "The part after the @-sign is not valid. It is not within a valid top-level domain.";
    const DISPLAY_NAME: &str =
        "A display name and angle brackets around the email address are not permitted here.";
    const CR_LF: &str = "Carriage return and line feed characters are not allowed";

    /// Each reason here is what `email-validator` 2.4.0 (behind pydantic 2.14 `EmailStr`)
    /// answered for the same input, except the two marked deliberately stricter.
    #[rustfmt::skip]
    const CASES: &[(&str, &str)] = &[
        // Accepted.
        ("a@123.com", OK),
        ("a+b@ex.co", OK),
        ("a!#$%&'*+/=?^_`{|}~@example.com", OK),
        (" A@Example.COM ", OK),
        ("\t a@example.com\u{a0}", OK),
        ("info@example.com", OK),
        ("a@example.c0m", OK),
        ("\u{fc}@example.com", OK),
        ("a@ex\u{e4}mple.com", OK),
        ("a\u{301}@example.com", OK),
        ("a@m\u{fc}nchen.de", OK),
        ("a@M\u{dc}NCHEN.DE", OK),
        ("a@\u{43f}\u{440}\u{438}\u{43c}\u{435}\u{440}.\u{440}\u{444}", OK),
        ("a@\u{4f8b}\u{3048}.\u{30c6}\u{30b9}\u{30c8}", OK),
        ("\u{7528}\u{6237}@\u{4f8b}\u{5b50}.\u{5e7f}\u{544a}", OK),
        ("a@\u{ff45}\u{ff58}\u{ff41}\u{ff4d}\u{ff50}\u{ff4c}\u{ff45}.com", OK),
        ("a@example\u{3002}com", OK),
        ("a@xn--80ak6aa92e.com", OK),
        ("a@ab.xn--p1ai", OK),
        // Before splitting (pydantic's own checks).
        ("a\r@example.com", CR_LF),
        ("a@example.com\n", CR_LF),
        // Splitting.
        ("", "An email address must have an @-sign."),
        ("ada", "An email address must have an @-sign."),
        ("a\"b@example.com", "An email address must have an @-sign."),
        ("\"abc@example.com", "An email address must have an @-sign."),
        ("a\u{ff20}example.com", "The email address has the \"full-width\" at-sign (@) character instead of a regular at-sign."),
        ("a\u{fe6b}example.com", "The email address has the \"small commercial at\" character instead of a regular at-sign."),
        ("\"a\"b@example.com", "Extra character(s) found after close quote: 'b'"),
        // Display names: refused (deliberately stricter than pydantic, which strips the name).
        ("Alice <al@example.com>", DISPLAY_NAME),
        ("<al@example.com>", DISPLAY_NAME),
        ("\"Alice\" <al@example.com>", DISPLAY_NAME),
        ("Alice <al@example.com>  ", DISPLAY_NAME),
        ("Al.ice <al@example.com>", "The display name contains invalid characters when not quoted: '.'."),
        ("Ali\u{e9} <a@example.com>", "The display name contains invalid characters when not quoted: '\u{e9}'."),
        ("Alice <al@example.com", "An open angle bracket at the start of the email address has to be followed by a close angle bracket at the end."),
        ("Alice <al@example.com> x", "There can't be anything after the email address."),
        ("a<b>@example.com", "There can't be anything after the email address."),
        ("Alice <>", "An email address must have an @-sign."),
        ("a <b <c@d.com>>", "The email address contains invalid characters before the @-sign: '<', SPACE."),
        ("Al <\u{301}\u{338}b@example.com>", "The email address contains invalid characters before the @-sign: '<', SPACE."),
        // Before the @-sign.
        ("@example.com", "There must be something before the @-sign."),
        ("\"\"@example.com", "There must be something before the @-sign."),
        ("a b@example.com", "The email address contains invalid characters before the @-sign: SPACE."),
        ("a(b)@example.com", "The email address contains invalid characters before the @-sign: '(', ')'."),
        ("a,b;c@example.com", "The email address contains invalid characters before the @-sign: ',', ';'."),
        ("a\\b@example.com", "The email address contains invalid characters before the @-sign: \"\\\"."),
        ("a\u{a0}b@example.com", "The email address contains unsafe characters: NO-BREAK SPACE."),
        ("a\u{200b}b@example.com", "The email address contains unsafe characters: ZERO WIDTH SPACE."),
        ("\u{301}a@example.com", "The email address contains unsafe characters: COMBINING ACUTE ACCENT."),
        (".a@example.com", "An email address cannot start with a period."),
        ("a.@example.com", "An email address cannot have a period immediately before the @-sign."),
        ("a..b@example.com", "An email address cannot have two periods in a row."),
        ("\"quoted\"@example.com", "Quoting the part before the @-sign is not allowed here."),
        ("\"a b\"@example.com", "Quoting the part before the @-sign is not allowed here."),
        ("\"a\u{1}\"@example.com", "The email address contains invalid characters in quotes before the @-sign: U+0001."),
        // After the @-sign.
        ("ada@", "There must be something after the @-sign."),
        ("a@[127.0.0.1]", "A bracketed IP address after the @-sign is not allowed here."),
        ("a@[IPv6:::1]", "A bracketed IP address after the @-sign is not allowed here."),
        ("a@[ipv6:2001:db8::1]", "A bracketed IP address after the @-sign is not allowed here."),
        ("a@[1.2.3]", "The address in brackets after the @-sign is not valid: It is not an IPv4 address (Expected 4 octets in '1.2.3') or is missing an address literal tag."),
        ("a@[01.2.3.4]", "The address in brackets after the @-sign is not valid: It is not an IPv4 address (Leading zeros are not permitted in '01' in '01.2.3.4') or is missing an address literal tag."),
        ("a@[1.2.3.256]", "The address in brackets after the @-sign is not valid: It is not an IPv4 address (Octet 256 (> 255) not permitted in '1.2.3.256') or is missing an address literal tag."),
        ("a@[1..2.3]", "The address in brackets after the @-sign is not valid: It is not an IPv4 address (Empty octet not permitted in '1..2.3') or is missing an address literal tag."),
        ("a@[foo:bar]", "The part after the @-sign contains an invalid address literal tag in brackets."),
        ("a@[foo]", "The part after the @-sign in brackets is not an IPv4 address and has no address literal tag."),
        ("a@[]", "The part after the @-sign in brackets is not an IPv4 address and has no address literal tag."),
        ("a@[", "The part after the @-sign contains invalid characters: '['."),
        ("a@b@example.com", "The part after the @-sign contains invalid characters: '@'."),
        ("a@exa_mple.com", "The part after the @-sign contains invalid characters: '_'."),
        ("a@exa mple.com", "The part after the @-sign contains invalid characters: SPACE."),
        ("a@exa\tmple.com", "The part after the @-sign contains invalid characters: U+0009."),
        ("a@\u{2488}.com", "The part after the @-sign contains invalid characters: '\u{2488}'."),
        ("a@exam\u{200b}ple.com", "The email address contains unsafe characters: ZERO WIDTH SPACE."),
        ("a@\u{a0}.com", "The email address contains unsafe characters: NO-BREAK SPACE."),
        ("a@exam\u{e000}ple.com", "The email address contains unsafe characters: U+E000."),
        ("a@\u{301}x.com", "The email address contains unsafe characters: COMBINING ACUTE ACCENT."),
        ("a@exa\u{ff3f}mple.com", "The part after the @-sign contains invalid characters after Unicode normalization: '_'."),
        ("a@example.com.", "An email address cannot end with a period."),
        ("a@.com", "An email address cannot have a period immediately after the @-sign."),
        ("a@x..com", "An email address cannot have two periods in a row."),
        ("a@x.com-", "An email address cannot end with a hyphen."),
        ("a@-x.com", "An email address cannot have a hyphen immediately after the @-sign."),
        ("a@x-.com", "An email address cannot have a period and a hyphen next to each other."),
        ("a@x.-com", "An email address cannot have a period and a hyphen next to each other."),
        ("a@xn--abc-.com", "An email address cannot have a period and a hyphen next to each other."),
        ("a@ab--c.com", "An email address cannot have two letters followed by two dashes immediately after the @-sign or after a period, except Punycode."),
        ("a@xn--\u{fc}.com", "The part after the @-sign is invalid (Label has disallowed hyphens in 3rd and 4th position)."),
        ("a@\u{2603}.com", "The part after the @-sign is invalid (Codepoint U+2603 at position 1 of '\u{2603}' not allowed)."),
        ("a@\u{1F600}.com", "The part after the @-sign is invalid (Codepoint U+1F600 at position 1 of '\u{1F600}' not allowed)."),
        ("a@localhost", NO_PERIOD),
        ("a@b", NO_PERIOD),
        ("a@test", NO_PERIOD),
        ("a@example.123", NOT_TLD),
        ("a@example.co1", NOT_TLD),
        ("a@1.2.3.4", NOT_TLD),
        ("a@example.test", SPECIAL),
        ("a@example.invalid", SPECIAL),
        ("a@example.local", SPECIAL),
        ("a@example.onion", SPECIAL),
        ("a@x.arpa", SPECIAL),
        ("a@example.arpa", SPECIAL),
        ("a@sub.localhost", SPECIAL),
        ("a@EXAMPLE.TEST", SPECIAL),
    ];

    #[test]
    fn matches_email_validator() {
        for &(input, want) in CASES {
            let got = check(input).err().unwrap_or_default();
            assert_eq!(got, want, "input {input:?}");
        }
    }

    /// Lengths, built rather than spelled out; reasons again from `email-validator`.
    #[test]
    fn lengths() {
        let a = |n: usize| "a".repeat(n);
        let cases: Vec<(String, &str)> = vec![
            (format!("a@{}.com", a(63)), OK),
            (format!("a@{}.com", a(64)), "After the @-sign, periods cannot be separated by so many characters (1 character too many)."),
            (format!("a@{}.com", a(70)), "After the @-sign, periods cannot be separated by so many characters (7 characters too many)."),
            (format!("x@{}.com", a(300)), "The email address is too long after the @-sign (51 characters too many)."),
            // 253 and 254 characters after the @-sign.
            (format!("a@{0}.{0}.{0}.{1}", a(63), a(61)), "The email address is too long (1 character too many)."),
            (format!("a@{0}.{0}.{0}.{1}", a(63), a(62)), "The email address is too long after the @-sign (1 character too many)."),
            (format!("{}@example.com", "x".repeat(64)), OK),
            // Deliberately stricter: email-validator checks this only in strict mode.
            (format!("{}@example.com", "x".repeat(65)), "The email address is too long before the @-sign (1 character too many)."),
            (format!("{}@example.com", "x".repeat(70)), "The email address is too long before the @-sign (6 characters too many)."),
            (format!("{}@{1}.{1}.{1}.com", "x".repeat(60), a(63)), "The email address is too long (2 characters too many)."),
            (format!("{}@{1}.{1}.{2}.com", "\u{fc}".repeat(60), a(63), a(60)), "The email address is too long (29-59 characters too many)."),
            (format!("{}@{1}.{1}.{1}.{1}.{1}.com", "x".repeat(60), "\u{fc}".repeat(10)), OK),
            (format!("a@{}.com", "\u{fc}".repeat(60)), "The part after the @-sign is invalid (Label too long)."),
            (format!("{}@{1}.{1}.{1}.\u{fc}\u{fc}.com", "x".repeat(60), a(50)), OK),
            (format!("{}@example.com", "a".repeat(2049)), "Length must not exceed 2048 characters"),
        ];
        for (input, want) in cases {
            let got = check(&input).err().unwrap_or_default();
            assert_eq!(got, want, "input {input:?}");
        }
    }

    #[test]
    fn punycode_matches_rfc_3492() {
        assert_eq!(super::punycode("m\u{fc}nchen"), "mnchen-3ya");
        assert_eq!(
            super::punycode("\u{43f}\u{440}\u{438}\u{43c}\u{435}\u{440}"),
            "e1afmkfd"
        );
        assert_eq!(super::punycode("\u{4f8b}\u{3048}"), "r8jz45g");
    }
}
