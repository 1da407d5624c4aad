//! `OAuth2TrustedProxy <IP or CIDR> [...]`: the direct peers (the TCP connection's client address,
//! never a header) whose forwarding headers are believed.

use std::net::IpAddr;

use super::UrlFrom;

/// One address block: an address and how many leading bits must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block {
    network: IpAddr,
    bits: u8,
}

impl Block {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.bits),
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.bits),
            _ => false,
        }
    }
}

/// Whether the first `bits` bits of `a` and `b` are equal.
fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let whole = usize::from(bits / 8);
    let rest = bits % 8;
    if a[..whole] != b[..whole] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (a[whole] & mask) == (b[whole] & mask)
}

/// The trusted peers of one server (virtual host).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TrustedProxies {
    blocks: Vec<Block>,
    /// Where these proxies write the public URL (`url_from=`).
    pub(crate) url_from: UrlFrom,
}

impl TrustedProxies {
    /// Adds one directive argument: `192.0.2.7`, `10.0.0.0/8`, `2001:db8::1` or `2001:db8::/32`,
    /// or the option `url_from=x-forwarded|forwarded|none`.
    pub(crate) fn add(&mut self, arg: &str) -> Result<(), String> {
        if let Some(value) = arg.strip_prefix("url_from=") {
            self.url_from = UrlFrom::parse(value).ok_or_else(|| {
                format!(
                    "OAuth2TrustedProxy: url_from=\"{}\" is not known: write one of {} (the headers your proxy writes the public URL in, and overwrites on every request)",
                    value.chars().take(32).collect::<String>().escape_default(),
                    UrlFrom::NAMES
                )
            })?;
            return Ok(());
        }
        self.blocks.push(parse_block(arg)?);
        Ok(())
    }

    /// Whether `peer` (the connection's client address as Apache prints it) is trusted. An
    /// IPv4-mapped IPv6 address (`::ffff:192.0.2.7`, what a dual-stack listener reports) is the
    /// IPv4 address it carries.
    pub(crate) fn trusts(&self, peer: &str) -> bool {
        if self.blocks.is_empty() {
            return false;
        }
        let Ok(ip) = peer.parse::<IpAddr>() else {
            return false;
        };
        let ip = ip.to_canonical();
        self.blocks.iter().any(|b| b.contains(ip))
    }
}

const HOW: &str = "write an IP address or a CIDR block, e.g. 192.0.2.7, 10.0.0.0/8, 2001:db8::1 or 2001:db8::/32 (host names are not accepted: the peer address is compared, not resolved)";

fn parse_block(arg: &str) -> Result<Block, String> {
    let shown: String = arg
        .chars()
        .take(64)
        .collect::<String>()
        .escape_default()
        .to_string();
    let (addr, bits) = match arg.split_once('/') {
        Some((addr, bits)) => (addr, Some(bits)),
        None => (arg, None),
    };
    let given = addr
        .parse::<IpAddr>()
        .map_err(|_| format!("OAuth2TrustedProxy: \"{shown}\" is not an IP address: {HOW}"))?;
    let max: u8 = if given.is_ipv4() { 32 } else { 128 };
    let bits = match bits {
        None => max,
        Some(b) => match b.parse::<u8>() {
            Ok(n) if n <= max && !b.starts_with('+') => n,
            _ => {
                return Err(format!(
                    "OAuth2TrustedProxy: \"{shown}\" has a prefix length that is not 0 to {max}: {HOW}"
                ));
            }
        },
    };
    // An IPv4-mapped block (::ffff:a.b.c.d/n) is the IPv4 block it maps, as peers are compared.
    let network = given.to_canonical();
    let bits = match (given, network) {
        (IpAddr::V6(_), IpAddr::V4(_)) => bits.checked_sub(96).ok_or_else(|| {
            format!(
                "OAuth2TrustedProxy: \"{shown}\" is an IPv4-mapped block shorter than /96: {HOW}"
            )
        })?,
        _ => bits,
    };
    let block = Block { network, bits };
    // Host bits set beside a prefix ("10.0.0.1/8") are most likely a typo for a single address
    // or for another block: say so rather than guess.
    if masked(network, bits) != network {
        return Err(format!(
            "OAuth2TrustedProxy: \"{shown}\" has host bits set after the /{bits} prefix: write the block's network address ({}/{bits}) or the single address without a prefix",
            masked(network, bits)
        ));
    }
    Ok(block)
}

fn masked(ip: IpAddr, bits: u8) -> IpAddr {
    fn mask(octets: &mut [u8], bits: u8) {
        for (i, o) in octets.iter_mut().enumerate() {
            let start = u32::try_from(i * 8).unwrap_or(u32::MAX);
            let keep = u32::from(bits).saturating_sub(start).min(8);
            *o &= if keep == 0 { 0 } else { 0xffu8 << (8 - keep) };
        }
    }
    match ip {
        IpAddr::V4(v4) => {
            let mut o = v4.octets();
            mask(&mut o, bits);
            IpAddr::from(o)
        }
        IpAddr::V6(v6) => {
            let mut o = v6.octets();
            mask(&mut o, bits);
            IpAddr::from(o)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(args: &[&str]) -> TrustedProxies {
        let mut t = TrustedProxies::default();
        for a in args {
            t.add(a).unwrap();
        }
        t
    }

    #[test]
    fn single_addresses_and_blocks() {
        let t = proxies(&["192.0.2.7", "10.0.0.0/8", "2001:db8::/32", "::1"]);
        for yes in [
            "192.0.2.7",
            "10.1.2.3",
            "10.255.255.255",
            "2001:db8:1::5",
            "::1",
        ] {
            assert!(t.trusts(yes), "{yes}");
        }
        for no in [
            "192.0.2.8",
            "11.0.0.1",
            "2001:db9::1",
            "::2",
            "",
            "localhost",
            "10.0.0.1 ",
        ] {
            assert!(!t.trusts(no), "{no}");
        }
    }

    #[test]
    fn ipv4_mapped_peers_are_their_ipv4_address() {
        let t = proxies(&["127.0.0.1"]);
        assert!(t.trusts("::ffff:127.0.0.1"));
        let t = proxies(&["::ffff:127.0.0.0/104"]);
        assert!(t.trusts("127.9.9.9"));
    }

    #[test]
    fn odd_prefix_lengths_match_by_bits() {
        let t = proxies(&["192.0.2.64/26"]);
        assert!(t.trusts("192.0.2.64") && t.trusts("192.0.2.127"));
        assert!(!t.trusts("192.0.2.63") && !t.trusts("192.0.2.128"));
        assert!(proxies(&["0.0.0.0/0"]).trusts("203.0.113.9"));
        assert!(!proxies(&["0.0.0.0/0"]).trusts("::2"));
    }

    #[test]
    fn url_from_option() {
        assert_eq!(proxies(&["10.0.0.0/8"]).url_from, UrlFrom::XForwarded);
        assert_eq!(
            proxies(&["url_from=forwarded", "10.0.0.0/8"]).url_from,
            UrlFrom::Forwarded
        );
        let e = TrustedProxies::default().add("url_from=both").unwrap_err();
        assert!(e.contains("x-forwarded, forwarded or none"), "{e}");
    }

    #[test]
    fn nothing_configured_trusts_no_one() {
        assert!(!TrustedProxies::default().trusts("127.0.0.1"));
    }

    #[test]
    fn bad_arguments_say_what_to_write() {
        let mut t = TrustedProxies::default();
        for bad in [
            "proxy.example.com",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/x",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "1.2.3",
        ] {
            let e = t.add(bad).unwrap_err();
            assert!(
                e.contains("OAuth2TrustedProxy") && e.contains("write"),
                "{bad}: {e}"
            );
        }
        let e = t.add("10.0.0.1/8").unwrap_err();
        assert!(e.contains("10.0.0.0/8"), "{e}");
        assert_eq!(t, TrustedProxies::default());
    }
}
