//! The client's address, behind `trusted_proxy_hops` reverse proxies.
//!
//! With 0 hops (the default) `X-Forwarded-For` is ignored and the socket peer is the client.
//! With N hops, the N-th entry from the right of `X-Forwarded-For` (all header lines joined)
//! is the client: the entries right of it were appended by the proxies we trust.
//!
//! ```
//! use axum::http::HeaderMap;
//! use crudauth_axum::client_ip::{client_ip, ip_key};
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("x-forwarded-for", "203.0.113.9, 10.0.0.2".parse().unwrap());
//! let peer = Some("10.0.0.1".parse().unwrap());
//! assert_eq!(client_ip(&headers, peer, 0), "10.0.0.1");
//! assert_eq!(client_ip(&headers, peer, 2), "203.0.113.9");
//! assert_eq!(ip_key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
//! ```

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::{Extensions, HeaderMap};

/// The client address as text (`"unknown"` when the server was not given peer addresses).
pub fn client_ip(headers: &HeaderMap, peer: Option<IpAddr>, trusted_proxy_hops: usize) -> String {
    client_address(headers, peer, trusted_proxy_hops).text()
}

/// Where the client's address came from, as [`client_address`] chose it.
pub(crate) enum ClientAddress<'a> {
    /// An address: the socket peer, or a proxy's entry that parses as one.
    Ip(IpAddr),
    /// A proxy's entry that is not an address, as the header has it (trimmed).
    Other(&'a str),
    /// Neither: the server was not given peer addresses.
    Unknown,
}

impl ClientAddress<'_> {
    /// The address as text: IPv4-mapped IPv6 unwrapped; anything else cut to 64 characters.
    pub(crate) fn text(&self) -> String {
        match self {
            ClientAddress::Ip(ip) => canonical(*ip).to_string(),
            ClientAddress::Other(text) => text.chars().take(64).collect(),
            ClientAddress::Unknown => "unknown".to_owned(),
        }
    }

    /// Appends the key the address is counted under: [`ip_key`] of [`Self::text`], without
    /// printing and re-parsing an address. (No text of 64 characters parses as an address, so
    /// the others' text is their key.)
    pub(crate) fn write_key(&self, out: &mut String) {
        match self {
            ClientAddress::Ip(ip) => write_key_of(out, *ip),
            ClientAddress::Other(text) => out.extend(text.chars().take(64)),
            ClientAddress::Unknown => out.push_str("unknown"),
        }
    }
}

/// The client's address: with 0 hops (or no `X-Forwarded-For`) the socket peer, else the
/// `trusted_proxy_hops`-th entry from the right of `X-Forwarded-For` (the leftmost when
/// there are fewer).
pub(crate) fn client_address(
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    trusted_proxy_hops: usize,
) -> ClientAddress<'_> {
    let from_peer = || peer.map_or(ClientAddress::Unknown, ClientAddress::Ip);
    if trusted_proxy_hops == 0 {
        return from_peer();
    }
    let mut parts: Vec<&str> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        if let Ok(text) = value.to_str() {
            parts.extend(text.split(',').map(str::trim).filter(|p| !p.is_empty()));
        }
    }
    if parts.is_empty() {
        return from_peer();
    }
    let chosen = parts[parts.len() - trusted_proxy_hops.min(parts.len())];
    match chosen.parse::<IpAddr>() {
        Ok(ip) => ClientAddress::Ip(ip),
        Err(_) => ClientAddress::Other(chosen),
    }
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

    #[test]
    fn hops_choose_from_the_right() {
        let h = xff(&["1.1.1.1, 2.2.2.2", "3.3.3.3"]);
        let peer = Some("9.9.9.9".parse().unwrap());
        assert_eq!(client_ip(&h, peer, 0), "9.9.9.9");
        assert_eq!(client_ip(&h, peer, 1), "3.3.3.3");
        assert_eq!(client_ip(&h, peer, 2), "2.2.2.2");
        assert_eq!(client_ip(&h, peer, 7), "1.1.1.1");
        assert_eq!(client_ip(&HeaderMap::new(), peer, 1), "9.9.9.9");
        assert_eq!(client_ip(&HeaderMap::new(), None, 0), "unknown");
    }

    #[test]
    fn mapped_and_v6_addresses() {
        assert_eq!(
            client_ip(
                &HeaderMap::new(),
                Some("::ffff:192.0.2.1".parse().unwrap()),
                0
            ),
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
        let v6 = Some("2001:db8:1:2:3:4:5:6".parse().unwrap());
        assert_eq!(key(&HeaderMap::new(), v6, 0), "q:2001:db8:1:2::/64");
        let h = xff(&["2001:db8:9::1"]);
        assert_eq!(key(&h, v6, 1), "q:2001:db8:9::/64");
        assert_eq!(key(&h, None, 0), "q:unknown");
        for v4 in ["0.0.0.0", "9.10.99.100", "255.255.255.255", "203.0.113.7"] {
            assert_eq!(key(&h, Some(v4.parse().unwrap()), 0), format!("q:{v4}"));
        }
        assert_eq!(
            key(&h, Some("::ffff:10.0.0.1".parse().unwrap()), 0),
            "q:10.0.0.1"
        );
    }

    #[test]
    fn the_key_is_ip_key_of_the_address_text() {
        let long = format!("{}1.2.3.4", "x".repeat(70));
        let lines: [&[&str]; 7] = [
            &[],
            &["203.0.113.9, 10.0.0.2"],
            &["::ffff:192.0.2.1", "2001:db8:9::1 , proxy"],
            &["not-an-address, , 198.51.100.7"],
            &[&long],
            &["ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"],
            &["unknown, ::1"],
        ];
        let peers = [
            None,
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
