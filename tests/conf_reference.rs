//! apache-conf/oauth2.conf is the directive reference shipped to administrators: every complete
//! example line in it, uncommented, must be accepted by `apache2 -t`, and every directive of the
//! shim's table has one.

mod common;

use common::*;

/// Example lines of the reference: commented directives without placeholders (`...`, `<...>`).
fn example_lines() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/apache-conf/oauth2.conf");
    let text = std::fs::read_to_string(path).expect("apache-conf/oauth2.conf");
    text.lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(str::trim)
        .filter(|l| l.starts_with("OAuth2") || l.starts_with("Require oauth2_claim"))
        .filter(|l| !l.contains("...") && !l.contains('<'))
        .map(str::to_string)
        .collect()
}

#[test]
fn reference_examples_pass_apache_config_test() {
    let lines = example_lines();
    assert!(lines.len() >= 8, "too few example lines found: {lines:?}");
    let (server, location): (Vec<String>, Vec<String>) = lines
        .into_iter()
        // Trust anchors named in examples are placeholders for a real file.
        .map(|l| l.replace("/etc/ssl/as-ca.pem", "/etc/ssl/certs/ca-certificates.crt"))
        .partition(|l| {
            [
                "OAuth2Cache",
                "OAuth2CryptoPassphrase",
                "OAuth2ResourceMetadata",
                "OAuth2TrustedProxy",
            ]
            .iter()
            .any(|d| l.starts_with(d))
        });
    let body = oauth2_location("/ref", &location.join("\n"));
    let t = Httpd::config_test(HttpdConfig::new(body).server(server.join("\n")));
    assert!(
        t.ok,
        "apache2 -t refused the reference examples:\n{}\n--- config ---\n{}",
        t.output, t.conf_text
    );
    let directives = shim_directives();
    assert!(directives.len() >= 6, "directives found: {directives:?}");
    for directive in directives
        .iter()
        .map(String::as_str)
        .chain(["Require oauth2_claim"])
    {
        assert!(
            t.conf_text.contains(&format!("\n{directive} ")),
            "no example of {directive} in the reference"
        );
    }
}

/// The directive names of the shim's table (`AP_INIT_...("OAuth2...", ...)`): every directive
/// the module has, so a new one cannot go undocumented.
fn shim_directives() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/c-shim/shim.c");
    let text = std::fs::read_to_string(path).expect("c-shim/shim.c");
    text.split("AP_INIT_")
        .skip(1)
        .filter_map(|rest| {
            let name = rest.split('"').nth(1)?;
            name.starts_with("OAuth2").then(|| name.to_string())
        })
        .collect()
}
