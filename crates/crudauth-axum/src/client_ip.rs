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

use std::net::{IpAddr, Ipv6Addr};

use axum::http::HeaderMap;

/// The client address as text (`"unknown"` when the server was not given peer addresses).
pub fn client_ip(headers: &HeaderMap, peer: Option<IpAddr>, trusted_proxy_hops: usize) -> String {
    let peer_text = || {
        peer.map(|ip| canonical(ip).to_string())
            .unwrap_or_else(|| "unknown".to_owned())
    };
    if trusted_proxy_hops == 0 {
        return peer_text();
    }
    let mut parts: Vec<&str> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        if let Ok(text) = value.to_str() {
            parts.extend(text.split(',').map(str::trim).filter(|p| !p.is_empty()));
        }
    }
    if parts.is_empty() {
        return peer_text();
    }
    let chosen = parts[parts.len() - trusted_proxy_hops.min(parts.len())];
    match chosen.parse::<IpAddr>() {
        Ok(ip) => canonical(ip).to_string(),
        Err(_) => chosen.chars().take(64).collect(),
    }
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
        Ok(addr) => key_of(addr),
        Err(_) => ip.to_owned(),
    }
}

/// [`ip_key`] of an address already parsed.
fn key_of(ip: IpAddr) -> String {
    let mut key = String::new();
    write_key_of(&mut key, ip);
    key
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

/// Appends the counting key of the client behind a request, `ip_key(client_ip(…))`, without
/// printing and re-parsing the socket peer when no proxy is trusted (the rate limiter's hot
/// path).
pub(crate) fn write_client_ip_key(
    out: &mut String,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    trusted_proxy_hops: usize,
) {
    match (trusted_proxy_hops, peer) {
        (0, Some(peer)) => write_key_of(out, peer),
        _ => out.push_str(&ip_key(&client_ip(headers, peer, trusted_proxy_hops))),
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
            write_client_ip_key(&mut out, headers, peer, hops);
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
}
