//! The SSRF guard: which addresses a webhook may be sent to, checked where the connection is made.
//!
//! Names are checked in the HTTP client's own DNS resolver ([`GuardedResolver`]): the addresses
//! the connection will use are the ones checked, so a name that resolves to a public address when
//! the endpoint is saved and to 127.0.0.1 when a message is sent (DNS rebinding) gets nowhere.
//! URLs with an IP literal never reach a resolver, so [`check_url`] checks those before sending.
//! Live endpoints may reach public addresses only; test endpoints may also reach loopback (local
//! development) unless configured otherwise. The client never uses a proxy (the resolver would
//! then check the proxy's address, not the endpoint's) and never follows a redirect.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Where a mode's webhooks may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Loopback (127.0.0.0/8, ::1) is allowed: test mode, for a receiver on the developer's machine.
    pub allow_loopback: bool,
}

impl Policy {
    /// Live endpoints: public addresses only.
    pub const LIVE: Policy = Policy { allow_loopback: false };
}

/// Why `ip` is refused under `policy`, or `None` when it is allowed.
pub fn refusal(ip: IpAddr, policy: Policy) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refusal_v4(v4, policy),
        IpAddr::V6(v6) => refusal_v6(v6, policy),
    }
}

fn refusal_v4(ip: Ipv4Addr, policy: Policy) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip == Ipv4Addr::new(169, 254, 169, 254) || ip == Ipv4Addr::new(100, 100, 100, 200) {
        return Some("a cloud metadata address");
    }
    if ip.is_loopback() {
        return (!policy.allow_loopback).then_some("loopback");
    }
    if ip.is_unspecified() || a == 0 {
        return Some("unspecified (0.0.0.0/8)");
    }
    if ip.is_private() {
        return Some("private (RFC 1918)");
    }
    if a == 100 && (64..128).contains(&b) {
        return Some("shared / carrier-grade NAT (100.64.0.0/10)");
    }
    if ip.is_link_local() {
        return Some("link-local");
    }
    if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        return Some("multicast, broadcast or reserved");
    }
    // IETF protocol assignments, documentation and benchmarking ranges: never a real receiver.
    if (a, b, c) == (192, 0, 0)
        || (a, b, c) == (192, 0, 2)
        || (a, b, c) == (198, 51, 100)
        || (a, b, c) == (203, 0, 113)
        || (a == 198 && (b == 18 || b == 19))
    {
        return Some("special-purpose (IETF, documentation or benchmarking)");
    }
    None
}

fn refusal_v6(ip: Ipv6Addr, policy: Policy) -> Option<&'static str> {
    let seg = ip.segments();
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        return Some("a cloud metadata address");
    }
    // IPv4 inside IPv6 (mapped ::ffff:a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16) is judged as
    // the IPv4 address it reaches.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return refusal_v4(v4, policy);
    }
    if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
        return refusal_v4(
            Ipv4Addr::new((seg[6] >> 8) as u8, seg[6] as u8, (seg[7] >> 8) as u8, seg[7] as u8),
            policy,
        );
    }
    if seg[0] == 0x2002 {
        return refusal_v4(
            Ipv4Addr::new((seg[1] >> 8) as u8, seg[1] as u8, (seg[2] >> 8) as u8, seg[2] as u8),
            policy,
        );
    }
    if ip.is_loopback() {
        return (!policy.allow_loopback).then_some("loopback");
    }
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    // Deprecated IPv4-compatible ::a.b.c.d.
    if seg[..6] == [0, 0, 0, 0, 0, 0] {
        return Some("IPv4-compatible (deprecated)");
    }
    if (seg[0] & 0xfe00) == 0xfc00 {
        return Some("unique local (fc00::/7)");
    }
    if (seg[0] & 0xffc0) == 0xfe80 {
        return Some("link-local");
    }
    if (seg[0] & 0xff00) == 0xff00 {
        return Some("multicast");
    }
    if seg[0] == 0x2001 && seg[1] == 0x0db8 {
        return Some("documentation (2001:db8::/32)");
    }
    None
}

/// Checks a URL whose host is an IP literal (those bypass the resolver); a name passes here and
/// is checked by [`GuardedResolver`] when the connection is made.
pub fn check_url(url: &url::Url, policy: Policy) -> Result<(), String> {
    let ip = match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
        Some(url::Host::Domain(_)) => return Ok(()),
        None => return Err("the URL has no host".into()),
    };
    match refusal(ip, policy) {
        Some(why) => Err(format!("address {ip} is {why}; this endpoint may not target it")),
        None => Ok(()),
    }
}

/// A DNS resolver that drops every address the policy refuses, and fails when none is left.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    policy: Policy,
}

impl GuardedResolver {
    /// A resolver for one mode's client.
    pub fn new(policy: Policy) -> GuardedResolver {
        GuardedResolver { policy }
    }
}

/// The resolver's refusal (reqwest reports it as the connection error's cause).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = Vec::new();
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match refusal(a.ip(), policy) {
                    None => true,
                    Some(why) => {
                        refused.push(format!("{} is {why}", a.ip()));
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let why = if refused.is_empty() {
                    format!("{host} has no address")
                } else {
                    format!("{host} resolves only to refused addresses ({})", refused.join(", "))
                };
                return Err(Box::new(Refused(why)) as Box<dyn std::error::Error + Send + Sync>);
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused_live(s: &str) -> bool {
        refusal(s.parse().unwrap_or_else(|e| panic!("{s}: {e}")), Policy::LIVE).is_some()
    }

    #[test]
    fn live_endpoints_may_not_reach_any_internal_or_special_address() {
        for a in [
            "127.0.0.1",
            "127.1.2.3",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.254",
            "169.254.169.254",
            "169.254.1.1",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.2.10",
            "198.18.0.1",
            "::1",
            "::",
            "fd00:ec2::254",
            "fc00::1",
            "fdff::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
            "2001:db8::1",
            "::127.0.0.1",
        ] {
            assert!(refused_live(a), "{a} should be refused");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for a in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!refused_live(a), "{a} should be allowed");
        }
    }

    #[test]
    fn test_mode_may_reach_loopback_but_not_private_or_metadata_addresses() {
        let test = Policy { allow_loopback: true };
        for a in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(refusal(a.parse().unwrap_or_else(|e| panic!("{e}")), test), None, "{a}");
        }
        for a in ["10.0.0.1", "169.254.169.254", "fd00:ec2::254", "192.168.0.1"] {
            assert!(
                refusal(a.parse().unwrap_or_else(|e| panic!("{e}")), test).is_some(),
                "{a}"
            );
        }
    }

    #[test]
    fn ip_literal_urls_are_checked_without_dns_in_every_spelling() {
        for u in [
            "http://127.0.0.1:8080/x",
            "http://[::1]/x",
            "http://2130706433/x",
            "http://0x7f.1/x",
            "http://[::ffff:7f00:1]/x",
            "https://169.254.169.254/latest/meta-data",
        ] {
            let url = url::Url::parse(u).unwrap_or_else(|e| panic!("{u}: {e}"));
            assert!(check_url(&url, Policy::LIVE).is_err(), "{u}");
        }
        let named = url::Url::parse("https://hooks.example.com/x").unwrap_or_else(|e| panic!("{e}"));
        assert!(
            check_url(&named, Policy::LIVE).is_ok(),
            "names are left to the resolver"
        );
    }

    #[tokio::test]
    async fn the_resolver_refuses_a_name_that_resolves_to_loopback_in_live_mode() {
        let name: Name = "localhost".parse().unwrap_or_else(|e| panic!("{e:?}"));
        let live = GuardedResolver::new(Policy::LIVE).resolve(name).await;
        let err = live.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("refused addresses"), "{err}");
        let name: Name = "localhost".parse().unwrap_or_else(|e| panic!("{e:?}"));
        let test = GuardedResolver::new(Policy { allow_loopback: true })
            .resolve(name)
            .await;
        assert!(test.is_ok_and(|mut a| a.next().is_some_and(|a| a.ip().is_loopback())));
    }
}
