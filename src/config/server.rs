//! Per-server (virtual host) configuration: settings that belong to the connection rather than
//! to a location. A virtual host that sets nothing inherits the main server's.

use std::sync::Arc;

use crate::proxy::{TrustedProxies, UrlFrom};

#[derive(Default, Clone)]
pub(crate) struct ServerConfig {
    /// `OAuth2TrustedProxy` lines of this server; `None`: inherit.
    pub(crate) trusted_proxies: Option<Arc<TrustedProxies>>,
}

impl ServerConfig {
    /// Adds the addresses of one `OAuth2TrustedProxy` argument (config time only).
    pub(crate) fn add_trusted_proxy(&mut self, arg: &str) -> Result<(), String> {
        let list = self.trusted_proxies.get_or_insert_with(Default::default);
        Arc::make_mut(list).add(arg)
    }

    /// The virtual host's own list replaces the main server's (they are not concatenated: a
    /// virtual host behind another load balancer must not trust the main server's).
    pub(crate) fn merge(base: &ServerConfig, add: &ServerConfig) -> ServerConfig {
        ServerConfig {
            trusted_proxies: add
                .trusted_proxies
                .clone()
                .or_else(|| base.trusted_proxies.clone()),
        }
    }

    /// Whether `peer` (the connection's client address) is a trusted proxy.
    pub(crate) fn trusts(&self, peer: &str) -> bool {
        self.trusted_proxies
            .as_ref()
            .is_some_and(|t| t.trusts(peer))
    }

    /// Where the trusted proxies write the public URL.
    pub(crate) fn url_from(&self) -> UrlFrom {
        self.trusted_proxies
            .as_ref()
            .map_or(UrlFrom::None, |t| t.url_from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(args: &[&str]) -> ServerConfig {
        let mut c = ServerConfig::default();
        for a in args {
            c.add_trusted_proxy(a).unwrap();
        }
        c
    }

    #[test]
    fn virtual_host_list_replaces_the_main_servers() {
        let main = with(&["10.0.0.0/8"]);
        let vhost = with(&["192.0.2.7"]);
        let merged = ServerConfig::merge(&main, &vhost);
        assert!(merged.trusts("192.0.2.7") && !merged.trusts("10.1.1.1"));
        let inherited = ServerConfig::merge(&main, &ServerConfig::default());
        assert!(inherited.trusts("10.1.1.1"));
        assert!(!ServerConfig::default().trusts("10.1.1.1"));
    }

    #[test]
    fn lines_accumulate() {
        let mut c = with(&["10.0.0.0/8"]);
        c.add_trusted_proxy("::1").unwrap();
        assert!(c.trusts("10.0.0.1") && c.trusts("::1"));
        assert!(c.add_trusted_proxy("nope").is_err());
    }
}
