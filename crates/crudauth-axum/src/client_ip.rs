//! The client's address, behind `trusted_proxy_hops` reverse proxies.
//!
//! With 0 hops (the default) `X-Forwarded-For` is ignored and the socket peer is the client.
//! With N hops, the N-th entry from the right of `X-Forwarded-For` (all header lines joined)
//! is the client: the entries right of it were appended by the proxies we trust. When the
//! header has fewer than N entries, or the chosen entry is not an address, the socket peer is
//! used: the leftmost entry is whatever the client sent, and never trusted. An entry may carry
//! a port (`203.0.113.9:5555`, `[2001:db8::1]:443`) or brackets; it is counted as the bare
//! address.
//!
//! Two misconfigurations are loud, once per process: a request without a peer address (the
//! server was not started with `into_make_service_with_connect_info::<SocketAddr>()`) logs an
//! ERROR, and an `X-Forwarded-For` arriving while `trusted_proxy_hops` is 0 (behind a proxy,
//! every caller then looks like the proxy) logs a WARN. Without an address, nothing is counted
//! in one bucket for every caller: the login lockout counts the account alone, and per-address
//! limits count by what else identifies the caller (see the rate-limiting guide).
//!
//! ```
//! use axum::http::HeaderMap;
//! use crudauth_axum::client_ip::{client_ip, ip_key};
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("x-forwarded-for", "203.0.113.9:5555, 10.0.0.2".parse().unwrap());
//! let peer = Some("10.0.0.1".parse().unwrap());
//! assert_eq!(client_ip(&headers, peer, 0), "10.0.0.1");
//! assert_eq!(client_ip(&headers, peer, 2), "203.0.113.9");
//! // Three hops but two entries: the peer, not the client-controlled leftmost entry.
//! assert_eq!(client_ip(&headers, peer, 3), "10.0.0.1");
//! assert_eq!(ip_key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
//! ```

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::ConnectInfo;
use axum::http::{Extensions, HeaderMap};

/// The client address as text (`"unknown"` when the server was not given peer addresses).
pub fn client_ip(headers: &HeaderMap, peer: Option<IpAddr>, trusted_proxy_hops: usize) -> String {
    client_address(headers, peer, trusted_proxy_hops).text()
}

/// The client's address as [`client_address`] chose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientAddress {
    /// An address: the socket peer, or a trusted proxy's entry.
    Ip(IpAddr),
    /// None: the server was not given peer addresses.
    Unknown,
}

impl ClientAddress {
    /// The address as text (IPv4-mapped IPv6 unwrapped), or `"unknown"`.
    pub(crate) fn text(&self) -> String {
        match self {
            ClientAddress::Ip(ip) => canonical(*ip).to_string(),
            ClientAddress::Unknown => UNKNOWN.to_owned(),
        }
    }

    /// Appends the key the address is counted under ([`ip_key`] of [`Self::text`]), without
    /// printing and re-parsing an address; `false` (nothing appended) when it is unknown.
    pub(crate) fn write_key(&self, out: &mut String) -> bool {
        match self {
            ClientAddress::Ip(ip) => {
                write_key_of(out, *ip);
                true
            }
            ClientAddress::Unknown => false,
        }
    }
}

/// What an unknown address reads as.
const UNKNOWN: &str = "unknown";

static NO_PEER_LOGGED: AtomicBool = AtomicBool::new(false);
static IGNORED_XFF_LOGGED: AtomicBool = AtomicBool::new(false);

/// The client's address: with 0 hops (or no `X-Forwarded-For`) the socket peer, else the
/// `trusted_proxy_hops`-th entry from the right of `X-Forwarded-For` when there are that many
/// and it is an address, else the socket peer. Logs the two misconfigurations, once each.
pub(crate) fn client_address(
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    trusted_proxy_hops: usize,
) -> ClientAddress {
    let from_peer = || match peer {
        Some(ip) => ClientAddress::Ip(ip),
        None => {
            if !NO_PEER_LOGGED.swap(true, Ordering::Relaxed) {
                tracing::error!(
                    "crudauth: a request arrived without a peer address, so callers cannot be told \
                     apart by address: serve the app with \
                     `app.into_make_service_with_connect_info::<SocketAddr>()`. Until then the \
                     login lockout counts accounts only and per-address limits fall back to \
                     other keys (logged once)"
                );
            }
            ClientAddress::Unknown
        }
    };
    if trusted_proxy_hops == 0 {
        if headers.contains_key("x-forwarded-for")
            && !IGNORED_XFF_LOGGED.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                "crudauth: X-Forwarded-For is ignored because trusted_proxy_hops is 0; behind a \
                 reverse proxy every caller then has the proxy's address. Set \
                 .trusted_proxy_hops(n) to the number of proxies that append to it (logged once)"
            );
        }
        return from_peer();
    }
    let mut parts: Vec<&str> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        if let Ok(text) = value.to_str() {
            parts.extend(text.split(',').map(str::trim).filter(|p| !p.is_empty()));
        }
    }
    if parts.len() < trusted_proxy_hops {
        return from_peer();
    }
    match parse_entry(parts[parts.len() - trusted_proxy_hops]) {
        Some(ip) => ClientAddress::Ip(ip),
        None => from_peer(),
    }
}

/// An `X-Forwarded-For` entry as an address: bare (`203.0.113.9`, `2001:db8::1`), bracketed
/// (`[2001:db8::1]`), or with a port (`203.0.113.9:5555`, `[2001:db8::1]:443`). Anything else
/// (`unknown`, an obfuscated identifier, garbage) is `None`.
pub(crate) fn parse_entry(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(socket) = entry.parse::<SocketAddr>() {
        return Some(socket.ip());
    }
    entry
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|inner| inner.parse::<Ipv6Addr>().ok())
        .map(IpAddr::V6)
}

/// The socket peer's address, when the server was started with `ConnectInfo<SocketAddr>`.
pub(crate) fn peer_ip(extensions: &Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// IPv4-mapped IPv6 addresses become their IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The key an address is counted under: IPv4 as is, IPv6 grouped by its /64 (one subscriber
/// usually holds a whole /64), IPv4-mapped IPv6 unwrapped; anything else unchanged.
pub fn ip_key(ip: &str) -> String {
    match ip.parse::<IpAddr>() {
        Ok(addr) => {
            let mut key = String::new();
            write_key_of(&mut key, addr);
            key
        }
        Err(_) => ip.to_owned(),
    }
}

/// [`ip_key`] of `text` when it is an address (see [`parse_entry`] for the forms read), else
/// `None`: `"unknown"` and the like are no address and are never counted as one.
pub(crate) fn known_ip_key(text: &str) -> Option<String> {
    parse_entry(text.trim()).map(|ip| {
        let mut key = String::new();
        write_key_of(&mut key, ip);
        key
    })
}

/// Appends [`ip_key`] of an address already parsed.
fn write_key_of(out: &mut String, ip: IpAddr) {
    match canonical(ip) {
        // Dotted decimal by hand, in one append: the formatting machinery costs more than the
        // rest of a rate-limit decision.
        IpAddr::V4(v4) => {
            let mut text = [0u8; 15];
            let mut len = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    text[len] = b'.';
                    len += 1;
                }
                if octet >= 100 {
                    text[len] = b'0' + octet / 100;
                    len += 1;
                }
                if octet >= 10 {
                    text[len] = b'0' + octet / 10 % 10;
                    len += 1;
                }
                text[len] = b'0' + octet % 10;
                len += 1;
            }
            out.push_str(std::str::from_utf8(&text[..len]).unwrap_or_default());
        }
        IpAddr::V6(v6) => {
            use std::fmt::Write;
            let s = v6.segments();
            let network = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            // Writing to a String cannot fail.
            let _ = write!(out, "{network}/64");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn hops_choose_from_the_right() {
        let h = xff(&["1.1.1.1, 2.2.2.2", "3.3.3.3"]);
        let peer = ip("9.9.9.9");
        assert_eq!(client_ip(&h, peer, 0), "9.9.9.9");
        assert_eq!(client_ip(&h, peer, 1), "3.3.3.3");
        assert_eq!(client_ip(&h, peer, 2), "2.2.2.2");
        assert_eq!(client_ip(&h, peer, 3), "1.1.1.1");
        assert_eq!(client_ip(&HeaderMap::new(), peer, 1), "9.9.9.9");
        assert_eq!(client_ip(&HeaderMap::new(), None, 0), "unknown");
    }

    #[test]
    fn fewer_entries_than_hops_use_the_peer_not_the_leftmost() {
        let peer = ip("10.0.0.1");
        // A request that skipped a proxy: the only entry is whatever the client wrote.
        assert_eq!(client_ip(&xff(&["6.6.6.6"]), peer, 2), "10.0.0.1");
        assert_eq!(client_ip(&xff(&["1.1.1.1, 2.2.2.2"]), peer, 7), "10.0.0.1");
        assert_eq!(
            client_address(&xff(&["6.6.6.6"]), None, 2),
            ClientAddress::Unknown
        );
    }

    #[test]
    fn entries_with_ports_and_brackets_are_normalised() {
        assert_eq!(parse_entry("1.2.3.4:5555"), ip("1.2.3.4"));
        assert_eq!(parse_entry("[2001:db8::1]:443"), ip("2001:db8::1"));
        assert_eq!(parse_entry("[2001:db8::1]"), ip("2001:db8::1"));
        assert_eq!(parse_entry("2001:db8::1"), ip("2001:db8::1"));
        let peer = ip("10.0.0.1");
        let key = |entry: &str| {
            let mut out = String::new();
            client_address(&xff(&[entry]), peer, 1).write_key(&mut out);
            out
        };
        assert_eq!(key("1.2.3.4:5555"), "1.2.3.4");
        assert_eq!(key("[2001:db8:1:2:3:4:5:6]:443"), "2001:db8:1:2::/64");
        assert_eq!(key("[2001:db8:1:2::9]"), "2001:db8:1:2::/64");
        assert_eq!(key("[::ffff:192.0.2.1]:80"), "192.0.2.1");
    }

    #[test]
    fn anything_that_is_not_an_address_falls_back_to_the_peer() {
        let peer = ip("10.0.0.1");
        for junk in [
            "unknown",
            "_hidden",
            "1.2.3.4.5",
            "1.2.3.4:99999",
            "[1.2.3.4]",
            "2001:db8::1:443x",
            "[2001:db8::1",
            "evil.example",
            &"x".repeat(100),
        ] {
            assert_eq!(parse_entry(junk), None, "{junk}");
            assert_eq!(client_ip(&xff(&[junk]), peer, 1), "10.0.0.1", "{junk}");
        }
        assert_eq!(
            client_address(&xff(&["junk"]), None, 1),
            ClientAddress::Unknown
        );
    }

    #[test]
    fn an_unknown_address_has_no_key() {
        let mut out = "q:".to_owned();
        assert!(!ClientAddress::Unknown.write_key(&mut out));
        assert_eq!(out, "q:");
        assert!(ClientAddress::Ip("1.2.3.4".parse().unwrap()).write_key(&mut out));
        assert_eq!(out, "q:1.2.3.4");
    }

    #[test]
    fn mapped_and_v6_addresses() {
        assert_eq!(
            client_ip(&HeaderMap::new(), ip("::ffff:192.0.2.1"), 0),
            "192.0.2.1"
        );
        assert_eq!(ip_key("::ffff:192.0.2.1"), "192.0.2.1");
        assert_eq!(ip_key("2001:db8::1"), "2001:db8::/64");
        assert_eq!(ip_key("203.0.113.5"), "203.0.113.5");
        assert_eq!(ip_key("unknown"), "unknown");
        let key = |headers: &HeaderMap, peer, hops| {
            let mut out = "q:".to_owned();
            client_address(headers, peer, hops).write_key(&mut out);
            out
        };
        let v6 = ip("2001:db8:1:2:3:4:5:6");
        assert_eq!(key(&HeaderMap::new(), v6, 0), "q:2001:db8:1:2::/64");
        let h = xff(&["2001:db8:9::1"]);
        assert_eq!(key(&h, v6, 1), "q:2001:db8:9::/64");
        for v4 in ["0.0.0.0", "9.10.99.100", "255.255.255.255", "203.0.113.7"] {
            assert_eq!(key(&h, ip(v4), 0), format!("q:{v4}"));
        }
        assert_eq!(key(&h, ip("::ffff:10.0.0.1"), 0), "q:10.0.0.1");
    }

    #[test]
    fn the_key_is_ip_key_of_the_address_text() {
        let long = format!("{}1.2.3.4", "x".repeat(70));
        let lines: [&[&str]; 8] = [
            &[],
            &["203.0.113.9, 10.0.0.2"],
            &["::ffff:192.0.2.1", "2001:db8:9::1 , proxy"],
            &["not-an-address, , 198.51.100.7"],
            &[&long],
            &["ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"],
            &["unknown, ::1"],
            &["[2001:db8::7]:443, 1.2.3.4:80"],
        ];
        let peers = [
            Some("9.9.9.9"),
            Some("::ffff:10.0.0.1"),
            Some("2001:db8::5"),
        ];
        for values in lines {
            let h = xff(values);
            for peer in peers {
                let peer = peer.map(|p| p.parse().unwrap());
                for hops in 0..4 {
                    let mut out = String::new();
                    client_address(&h, peer, hops).write_key(&mut out);
                    assert_eq!(
                        out,
                        ip_key(&client_ip(&h, peer, hops)),
                        "{values:?} {peer:?} {hops}"
                    );
                }
            }
        }
    }
}
