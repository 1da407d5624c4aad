//! The RFC 9728 section 2 JSON document of one host: the configured members, then what the
//! host's configuration declares. Lists without values are left out (section 3.2).

use serde_json::{Map, Value};

use super::declared::Declared;
use super::directive::Directive;

pub(crate) fn render(directive: &Directive, declared: &Declared) -> Vec<u8> {
    let mut doc = Map::new();
    let strings = |list: &[&str]| Value::Array(list.iter().map(|s| Value::from(*s)).collect());
    let list = |doc: &mut Map<String, Value>, name: &str, values: &[&str]| {
        if !values.is_empty() {
            doc.insert(name.into(), strings(values));
        }
    };
    doc.insert("resource".into(), directive.resource.as_str().into());
    let servers: Vec<&str> = directive
        .authorization_servers
        .iter()
        .map(String::as_str)
        .collect();
    list(&mut doc, "authorization_servers", &servers);
    let scopes: Vec<&str> = directive
        .scopes_supported
        .iter()
        .map(String::as_str)
        .collect();
    list(&mut doc, "scopes_supported", &scopes);
    list(
        &mut doc,
        "bearer_methods_supported",
        &declared.bearer_method_names(),
    );
    if let Some(name) = &directive.resource_name {
        doc.insert("resource_name".into(), name.as_str().into());
    }
    if let Some(url) = &directive.resource_documentation {
        doc.insert("resource_documentation".into(), url.as_str().into());
    }
    doc.insert(
        "tls_client_certificate_bound_access_tokens".into(),
        declared.mtls.into(),
    );
    let algs: Vec<&str> = declared.dpop_algs.iter().map(|a| a.name()).collect();
    list(&mut doc, "dpop_signing_alg_values_supported", &algs);
    doc.insert(
        "dpop_bound_access_tokens_required".into(),
        declared.dpop_required().into(),
    );
    // A map of strings, booleans and arrays of strings always serialises.
    serde_json::to_vec(&Value::Object(doc)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::alg::Alg;
    use crate::resource_metadata::declared::BearerMethods;
    use crate::resource_metadata::directive;
    use serde_json::json;

    fn json_of(directive: &Directive, declared: &Declared) -> Value {
        serde_json::from_slice(&render(directive, declared)).unwrap()
    }

    #[test]
    fn only_the_resource_and_what_is_known() {
        let d = directive::parse("https://api.example.com/v1", None).unwrap();
        assert_eq!(
            json_of(&d, &Declared::default()),
            json!({
                "resource": "https://api.example.com/v1",
                "bearer_methods_supported": ["header"],
                "tls_client_certificate_bound_access_tokens": false,
                "dpop_bound_access_tokens_required": false,
            })
        );
    }

    #[test]
    fn every_member_in_order() {
        let d = directive::parse(
            "https://api.example.com/v1?tenant=a",
            Some(
                "authorization_servers=https://as.example.com&scopes_supported=read+write&resource_name=An+%22API%22%0&resource_documentation=https://docs.example.com/",
            ),
        );
        // `%0` is not a valid escape: form decoding keeps it as written.
        let d = d.unwrap();
        let declared = Declared {
            verifiers: 2,
            dpop_verifiers: 2,
            mtls: true,
            dpop_algs: vec![Alg::ES256, Alg::EdDSA],
            bearer_methods: Some(BearerMethods {
                header: true,
                body: false,
                query: true,
            }),
        };
        let text = String::from_utf8(render(&d, &declared)).unwrap();
        assert_eq!(
            text,
            r#"{"resource":"https://api.example.com/v1?tenant=a","authorization_servers":["https://as.example.com"],"scopes_supported":["read","write"],"bearer_methods_supported":["header","query"],"resource_name":"An \"API\"%0","resource_documentation":"https://docs.example.com/","tls_client_certificate_bound_access_tokens":true,"dpop_signing_alg_values_supported":["ES256","EdDSA"],"dpop_bound_access_tokens_required":true}"#
        );
    }

    #[test]
    fn no_bearer_method_with_a_name_leaves_the_member_out() {
        let d = directive::parse("https://h", None).unwrap();
        let declared = Declared {
            bearer_methods: Some(BearerMethods::default()),
            ..Declared::default()
        };
        let doc = json_of(&d, &declared);
        assert!(doc.get("bearer_methods_supported").is_none(), "{doc}");
        assert!(
            doc.get("dpop_signing_alg_values_supported").is_none(),
            "{doc}"
        );
    }
}
