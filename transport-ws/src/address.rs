//! Who a client is by address: the address a connection counts under (the TCP peer's, or the
//! one a trusted reverse proxy names in a header), and the connections open per address.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use hyper::HeaderMap;

/// The address a request counts under: the last address in `header` (the one the proxy in
/// front of us saw) when that header is configured and names one, else the TCP peer's. An
/// IPv6 address counts by its /64 prefix (one host usually holds the whole prefix), and an
/// IPv4 address mapped into IPv6 as the IPv4 address.
pub(crate) fn client_address(
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    header: Option<&str>,
) -> Option<IpAddr> {
    let named = header
        .and_then(|name| headers.get_all(name).iter().next_back())
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.rsplit(',').next())
        .and_then(|last| parse(last.trim()));
    named.or(peer).map(prefix)
}

/// An address as a proxy writes it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:5678`.
fn parse(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    if let Ok(with_port) = text.parse::<std::net::SocketAddr>() {
        return Some(with_port.ip());
    }
    None
}

/// What an address is counted as.
fn prefix(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                IpAddr::V6(Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
            }
        },
    }
}

/// Connections open per address.
#[derive(Debug, Default)]
pub(crate) struct PerAddress {
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerAddress {
    /// A place for one more connection from `ip`, if it has fewer than `max` open.
    pub(crate) fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<AddressSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            per: Arc::clone(self),
            ip,
        })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// One connection's place under its address's cap, given back when dropped.
#[derive(Debug)]
pub(crate) struct AddressSlot {
    per: Arc<PerAddress>,
    ip: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.per.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn the_proxy_header_is_read_only_when_configured_and_its_last_address_counts() {
        let ip = |text: &str| Some(text.parse::<IpAddr>().unwrap());
        let peer = ip("10.0.0.1");
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 2.2.2.2")]);
        assert_eq!(client_address(&h, peer, None), peer);
        assert_eq!(
            client_address(&h, peer, Some("X-Forwarded-For")),
            ip("2.2.2.2")
        );
        // Nothing usable in the header: the peer counts.
        let junk = headers(&[("x-forwarded-for", "not an address")]);
        assert_eq!(client_address(&junk, peer, Some("x-forwarded-for")), peer);
        let ported = headers(&[("x-real-ip", "[2001:db8::7]:443")]);
        let named = client_address(&ported, peer, Some("x-real-ip"));
        assert_eq!(named, ip("2001:db8::"));
        // Mounted in a server that did not say the peer: the header alone, or nothing.
        assert_eq!(
            client_address(&h, None, Some("x-forwarded-for")),
            ip("2.2.2.2")
        );
        assert_eq!(client_address(&h, None, None), None);
    }

    #[test]
    fn an_ipv6_host_counts_by_its_64_and_a_mapped_ipv4_as_itself() {
        let a = prefix("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = prefix("2001:db8:1:2:bbbb::9".parse().unwrap());
        assert_eq!(a, b);
        let mapped = prefix("::ffff:192.0.2.1".parse().unwrap());
        assert_eq!(mapped, "192.0.2.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn an_address_holds_at_most_max_places_and_gets_them_back() {
        let per = Arc::new(PerAddress::default());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let held: Vec<_> = (0..3).map(|_| per.take(ip, 3).unwrap()).collect();
        assert!(per.take(ip, 3).is_none());
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(per.take(other, 3).is_some());
        drop(held);
        assert_eq!(per.len(), 0, "addresses with nothing open are forgotten");
        assert!(per.take(ip, 3).is_some());
    }
}
