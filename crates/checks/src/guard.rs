//! Where checks may point. Link-local addresses (169.254.0.0/16, fe80::/10) are refused unless
//! allowed: that is where cloud metadata services answer (169.254.169.254), and a check an
//! editor defines must not become a way to read instance credentials through hubmon.
//!
//! Names are resolved here and the refusal applies to what they resolve to, so a name that
//! points at a metadata address is refused too; for HTTP the same rule runs as the client's
//! resolver, so it holds for redirects and for every connection.

use std::net::{IpAddr, SocketAddr};

use crate::kinds::Failure;

/// Whether `ip` is link-local (IPv4-mapped IPv6 included).
pub fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.is_link_local(),
            None => (v6.segments()[0] & 0xffc0) == 0xfe80,
        },
    }
}

pub const BLOCKED_HINT: &str =
    "link-local addresses (cloud metadata) are blocked; set check.allow_link_local = true to allow them";

/// Resolves `host:port`, refusing link-local results unless `allow_link_local`.
pub async fn resolve(host: &str, port: u16, allow_link_local: bool) -> Result<Vec<SocketAddr>, Failure> {
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| Failure::new(format!("cannot resolve {host}: {e}")))?
        .collect();
    allowed(host, addresses, allow_link_local)
}

/// Refuses the link-local addresses in `addresses` unless allowed; an error if none is left.
pub fn allowed(host: &str, addresses: Vec<SocketAddr>, allow_link_local: bool) -> Result<Vec<SocketAddr>, Failure> {
    if allow_link_local {
        return Ok(addresses);
    }
    let total = addresses.len();
    let kept: Vec<SocketAddr> = addresses.into_iter().filter(|a| !is_link_local(a.ip())).collect();
    if kept.is_empty() {
        let why =
            if total == 0 { "no address".to_string() } else { format!("only link-local addresses; {BLOCKED_HINT}") };
        return Err(Failure::new(format!("{host} resolves to {why}")));
    }
    Ok(kept)
}

/// A refusal for an address literal given in a definition, for create/update to report.
pub fn refuse_literal(host: &str, allow_link_local: bool) -> Option<String> {
    let ip: IpAddr = host.trim_matches(['[', ']']).parse().ok()?;
    (!allow_link_local && is_link_local(ip)).then(|| format!("target {ip} is link-local: {BLOCKED_HINT}"))
}

/// reqwest's resolver with the same rule.
pub struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addresses = resolve(&host, 0, false).await.map_err(|f| Box::new(f) as Box<_>)?;
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn metadata_addresses_are_link_local() {
        assert!(is_link_local("169.254.169.254".parse().unwrap()));
        assert!(is_link_local("fe80::1".parse().unwrap()));
        assert!(is_link_local("::ffff:169.254.169.254".parse().unwrap()));
        assert!(!is_link_local("127.0.0.1".parse().unwrap()));
        assert!(!is_link_local("10.0.0.1".parse().unwrap()));
        assert!(refuse_literal("169.254.169.254", false).is_some());
        assert!(refuse_literal("[fe80::1]", false).is_some());
        assert!(refuse_literal("169.254.169.254", true).is_none());
        assert!(refuse_literal("example.test", false).is_none());
    }

    #[tokio::test]
    async fn names_resolving_only_to_link_local_are_refused() {
        let error = resolve("169.254.169.254", 80, false).await.unwrap_err();
        assert!(error.message.contains("allow_link_local"), "{}", error.message);
        assert_eq!(resolve("169.254.169.254", 80, true).await.unwrap().len(), 1);
        assert!(!resolve("127.0.0.1", 80, false).await.unwrap().is_empty());
    }
}
