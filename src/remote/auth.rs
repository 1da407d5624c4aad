//! How the module authenticates to the introspection endpoint (`introspect.auth`): RFC 6749 section 2.3.1 client secrets and RFC 7523 client assertions.
//! Credentials are un-prefixed options (`client_id`, `client_secret`, ...), as in the C module.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::RsaPrivateKeyBuilder;
use openssl::sign::Signer;
use serde_json::json;

use super::fetch::HttpOptions;
use crate::options::Options;

pub(crate) const UNKNOWN_AUTH: &str = "Invalid value, must be one of: none, client_secret_basic, client_secret_post, client_secret_jwt, private_key_jwt, client_cert or basic.";

#[derive(Clone)]
pub(crate) enum EndpointAuth {
    None,
    ClientSecretBasic {
        id: String,
        secret: String,
    },
    ClientSecretPost {
        id: String,
        secret: String,
    },
    ClientSecretJwt {
        id: String,
        secret: String,
        aud: String,
    },
    PrivateKeyJwt {
        id: String,
        key: PKey<Private>,
        kid: Option<String>,
        aud: String,
    },
    ClientCert {
        cert: String,
        key: String,
        /// RFC 8705 2: the client is identified by `client_id` in the request.
        id: Option<String>,
    },
    Basic {
        username: String,
        password: String,
    },
}

impl std::fmt::Debug for EndpointAuth {
    // Never print secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What authentication adds to one request.
#[derive(Default)]
pub(crate) struct Applied {
    pub(crate) form: Vec<(String, String)>,
    pub(crate) basic: Option<(String, String)>,
}

impl EndpointAuth {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            EndpointAuth::None => "none",
            EndpointAuth::ClientSecretBasic { .. } => "client_secret_basic",
            EndpointAuth::ClientSecretPost { .. } => "client_secret_post",
            EndpointAuth::ClientSecretJwt { .. } => "client_secret_jwt",
            EndpointAuth::PrivateKeyJwt { .. } => "private_key_jwt",
            EndpointAuth::ClientCert { .. } => "client_cert",
            EndpointAuth::Basic { .. } => "basic",
        }
    }

    /// `<prefix>.auth` and the credentials it needs.
    pub(crate) fn parse(options: &Options, prefix: &str) -> Result<EndpointAuth, String> {
        let method = options.get(&format!("{prefix}.auth")).unwrap_or("none");
        let need = |name: &str| {
            options
                .get(name)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .ok_or_else(|| format!("{name} must be set for {method}"))
        };
        Ok(match method {
            "none" => EndpointAuth::None,
            "client_secret_basic" => EndpointAuth::ClientSecretBasic {
                id: need("client_id")?,
                secret: need("client_secret")?,
            },
            "client_secret_post" => EndpointAuth::ClientSecretPost {
                id: need("client_id")?,
                secret: need("client_secret")?,
            },
            "client_secret_jwt" => EndpointAuth::ClientSecretJwt {
                id: need("client_id")?,
                secret: need("client_secret")?,
                aud: need("aud")?,
            },
            "private_key_jwt" => {
                let id = need("client_id")?;
                let (key, kid) = private_rsa_jwk(&need("jwk")?)?;
                EndpointAuth::PrivateKeyJwt {
                    id,
                    key,
                    kid,
                    aud: need("aud")?,
                }
            }
            "client_cert" => EndpointAuth::ClientCert {
                cert: need("cert")?,
                key: need("key")?,
                id: options
                    .get("client_id")
                    .filter(|v| !v.is_empty())
                    .map(str::to_string),
            },
            "basic" => EndpointAuth::Basic {
                username: need("username")?,
                password: options.get("password").unwrap_or("").to_string(),
            },
            _ => return Err(UNKNOWN_AUTH.to_string()),
        })
    }

    /// Adds credentials to a request; `now` is for the assertion timestamps.
    pub(crate) fn apply(&self, http: &mut HttpOptions, now: i64) -> Result<Applied, String> {
        let mut a = Applied::default();
        match self {
            EndpointAuth::None => {}
            EndpointAuth::ClientSecretBasic { id, secret } => {
                // RFC 6749 2.3.1: both form-encoded before Basic encoding (the C module does this too).
                a.basic = Some((form_encode(id), form_encode(secret)));
            }
            EndpointAuth::ClientSecretPost { id, secret } => {
                a.form.push(("client_id".into(), id.clone()));
                a.form.push(("client_secret".into(), secret.clone()));
            }
            EndpointAuth::ClientSecretJwt { id, secret, aud } => {
                let key = PKey::hmac(secret.as_bytes()).map_err(|e| e.to_string())?;
                let jwt = assertion(id, aud, now, "HS256", None, &key)?;
                push_assertion(&mut a.form, id, jwt);
            }
            EndpointAuth::PrivateKeyJwt { id, key, kid, aud } => {
                let jwt = assertion(id, aud, now, "RS256", kid.as_deref(), key)?;
                push_assertion(&mut a.form, id, jwt);
            }
            EndpointAuth::ClientCert { cert, key, id } => {
                http.client_cert = Some((cert.clone(), key.clone()));
                if let Some(id) = id {
                    a.form.push(("client_id".into(), id.clone()));
                }
            }
            EndpointAuth::Basic { username, password } => {
                a.basic = Some((username.clone(), password.clone()))
            }
        }
        Ok(a)
    }
}

fn form_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn push_assertion(form: &mut Vec<(String, String)>, id: &str, jwt: String) {
    form.push(("client_id".into(), id.to_string()));
    form.push((
        "client_assertion_type".into(),
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
    ));
    form.push(("client_assertion".into(), jwt));
}

/// A client assertion (RFC 7523): iss = sub = client_id, aud, jti, iat, exp = now + 60.
fn assertion(
    id: &str,
    aud: &str,
    now: i64,
    alg: &str,
    kid: Option<&str>,
    key: &PKey<Private>,
) -> Result<String, String> {
    let mut header = json!({"alg": alg, "typ": "JWT"});
    if let Some(kid) = kid {
        header["kid"] = json!(kid);
    }
    let mut jti = [0u8; 16];
    openssl::rand::rand_bytes(&mut jti).map_err(|e| e.to_string())?;
    let jti = crate::hex::lower(&jti);
    let claims = json!({"iss": id, "sub": id, "aud": aud, "jti": jti, "iat": now, "exp": now + 60});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut signer = Signer::new(MessageDigest::sha256(), key).map_err(|e| e.to_string())?;
    signer.update(input.as_bytes()).map_err(|e| e.to_string())?;
    let sig = signer.sign_to_vec().map_err(|e| e.to_string())?;
    Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

/// The RSA private key of a JWK (`private_key_jwt` signs with RS256, as the C module does).
fn private_rsa_jwk(text: &str) -> Result<(PKey<Private>, Option<String>), String> {
    let jwk = crate::jose::json::parse_object_as(text.as_bytes(), "jwk")
        .map_err(|e| format!("jwk: {e}"))?;
    if jwk.get("kty").and_then(|v| v.as_str()) != Some("RSA") {
        return Err(
            "jwk must be an RSA private key (kty RSA with d, p, q, dp, dq, qi) for private_key_jwt"
                .into(),
        );
    }
    let num = |name: &str| -> Result<BigNum, String> {
        let v = jwk.get(name).and_then(|v| v.as_str()).ok_or_else(|| {
            format!("jwk: member \"{name}\" is missing: private_key_jwt needs the private key")
        })?;
        let bytes = URL_SAFE_NO_PAD
            .decode(v)
            .map_err(|_| format!("jwk: member \"{name}\" is not base64url"))?;
        BigNum::from_slice(&bytes).map_err(|e| e.to_string())
    };
    let s = |e: openssl::error::ErrorStack| e.to_string();
    let rsa = RsaPrivateKeyBuilder::new(num("n")?, num("e")?, num("d")?)
        .map_err(s)?
        .set_factors(num("p")?, num("q")?)
        .map_err(s)?
        .set_crt_params(num("dp")?, num("dq")?, num("qi")?)
        .map_err(s)?
        .build();
    if !rsa.check_key().unwrap_or(false) {
        return Err("jwk: the RSA private key is inconsistent".into());
    }
    let kid = jwk.get("kid").and_then(|v| v.as_str()).map(str::to_string);
    Ok((PKey::from_rsa(rsa).map_err(|e| e.to_string())?, kid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<EndpointAuth, String> {
        EndpointAuth::parse(&Options::parse(text), "introspect")
    }

    #[test]
    fn missing_credentials_have_the_c_messages() {
        assert_eq!(
            parse("introspect.auth=client_secret_basic").unwrap_err(),
            "client_id must be set for client_secret_basic"
        );
        assert_eq!(
            parse("introspect.auth=client_secret_post&client_id=x").unwrap_err(),
            "client_secret must be set for client_secret_post"
        );
        assert_eq!(
            parse("introspect.auth=client_cert&cert=/c").unwrap_err(),
            "key must be set for client_cert"
        );
        assert_eq!(parse("introspect.auth=bogus").unwrap_err(), UNKNOWN_AUTH);
    }

    #[test]
    fn basic_credentials_are_form_encoded() {
        let auth =
            parse("introspect.auth=client_secret_basic&client_id=rs0&client_secret=s%2Fx").unwrap();
        let applied = auth.apply(&mut HttpOptions::default(), 0).unwrap();
        assert_eq!(
            applied.basic,
            Some(("rs0".to_string(), "s%2Fx".to_string()))
        );
    }

    #[test]
    fn client_secret_jwt_assertion_verifies() {
        let secret = "0123456789abcdef0123456789abcdef";
        let auth = parse(&format!(
            "introspect.auth=client_secret_jwt&client_id=c&client_secret={secret}&aud=https://as"
        ))
        .unwrap();
        let applied = auth
            .apply(&mut HttpOptions::default(), 1_800_000_000)
            .unwrap();
        let jwt = &applied
            .form
            .iter()
            .find(|(k, _)| k == "client_assertion")
            .unwrap()
            .1;
        let key = crate::jose::Key::from_secret(secret.as_bytes()).unwrap();
        let jws = crate::jose::Jws::parse(jwt).unwrap();
        key.verify(&jws).unwrap();
        let claims = crate::jose::json::parse_object(&jws.payload).unwrap();
        assert_eq!(claims["iss"], "c");
        assert_eq!(claims["aud"], "https://as");
        assert_eq!(claims["exp"], 1_800_000_060);
    }

    #[test]
    fn private_key_jwt_needs_a_private_rsa_jwk() {
        assert!(
            parse(
                "introspect.auth=private_key_jwt&client_id=c&aud=a&jwk=%7B%22kty%22%3A%22EC%22%7D"
            )
            .is_err()
        );
    }
}
