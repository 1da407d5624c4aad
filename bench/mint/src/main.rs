//! bench-mint: mints JWT access tokens for bench/run, fast and in bulk.
//!
//!   bench-mint jwk  <alg> <private-key-file> <kid>
//!       prints the public JWK (one JSON object) of an RS256 or ES256 key
//!   bench-mint mint <alg> <key> <kid|-> <count> <out-prefix> <files> [x5t#S256]
//!       alg RS256 | ES256: key = PEM private key file; HS256: key = the secret itself.
//!       Writes <count> distinct tokens, one per line, spread round-robin over <files> files
//!       <out-prefix>.0 .. <out-prefix>.<files-1> (one per wrk thread). Every token has
//!       sub=bench, iat=now, exp=now+30 days and a distinct jti; with x5t#S256 also
//!       cnf={"x5t#S256": ...} (RFC 8705 certificate binding). Uses all cores.
//!   bench-mint dpop-token <key-file> <kid> <proof-key-file>
//!       prints one ES256 access token (signed with key-file, like `mint`) bound to the DPoP
//!       proof key: cnf={"jkt": RFC 7638 thumbprint of the proof key's public JWK}
//!   bench-mint dpop <proof-key-file> <token-file> <url> <count> <out-prefix> <files> <tag>
//!       RFC 9449 DPoP proofs for the token in token-file (its first line): <count> lines
//!       "<token> <proof>", spread round-robin over <out-prefix>.0 .. <out-prefix>.<files-1> like
//!       `mint`. Every proof is an ES256 JWS by the proof key with the header
//!       {"typ":"dpop+jwt","alg":"ES256","jwk":<public key>} and the claims jti (distinct:
//!       <tag>-<nanoseconds at start>-<n>), htm=GET, htu=<url>, iat=now and
//!       ath=base64url(SHA-256(token)). Uses all cores.
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::EcKey;
use openssl::ecdsa::EcdsaSig;
use openssl::hash::{hash, MessageDigest};
use openssl::pkey::{PKey, Private};
use openssl::sign::Signer;
use std::io::{BufWriter, Write};
use std::time::{SystemTime, UNIX_EPOCH};

fn b64(d: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(d)
}

fn die(msg: &str) -> ! {
    eprintln!("bench-mint: {msg}");
    std::process::exit(2)
}

enum Key {
    Rsa(PKey<Private>),
    Ec(PKey<Private>),
    Hmac(PKey<Private>),
}

fn load(alg: &str, key: &str) -> Key {
    match alg {
        "RS256" | "ES256" => {
            let pem = std::fs::read(key).unwrap_or_else(|e| die(&format!("{key}: {e}")));
            let k = PKey::private_key_from_pem(&pem).unwrap_or_else(|e| die(&format!("{key}: {e}")));
            if alg == "RS256" { Key::Rsa(k) } else { Key::Ec(k) }
        }
        "HS256" => Key::Hmac(PKey::hmac(key.as_bytes()).unwrap()),
        _ => die("alg must be RS256, ES256 or HS256"),
    }
}

fn sign(key: &Key, input: &[u8]) -> Vec<u8> {
    match key {
        Key::Rsa(k) | Key::Hmac(k) => {
            let mut s = Signer::new(MessageDigest::sha256(), k).unwrap();
            s.update(input).unwrap();
            s.sign_to_vec().unwrap()
        }
        Key::Ec(k) => {
            // JWS wants R || S (32 bytes each), not DER.
            let mut s = Signer::new(MessageDigest::sha256(), k).unwrap();
            s.update(input).unwrap();
            let der = s.sign_to_vec().unwrap();
            let sig = EcdsaSig::from_der(&der).unwrap();
            let mut out = sig.r().to_vec_padded(32).unwrap();
            out.extend(sig.s().to_vec_padded(32).unwrap());
            out
        }
    }
}

fn jwk(alg: &str, file: &str, kid: &str) {
    let v = match load(alg, file) {
        Key::Rsa(k) => {
            let r = k.rsa().unwrap();
            serde_json::json!({"kty":"RSA","kid":kid,"use":"sig","alg":"RS256",
                "n": b64(&r.n().to_vec()), "e": b64(&r.e().to_vec())})
        }
        Key::Ec(k) => {
            let (x, y) = ec_xy(&k);
            serde_json::json!({"kty":"EC","kid":kid,"use":"sig","alg":"ES256","crv":"P-256",
                "x": x, "y": y})
        }
        Key::Hmac(_) => die("no public JWK for HS256"),
    };
    println!("{v}");
}

/// The base64url x and y coordinates of a P-256 key's public point.
fn ec_xy(k: &PKey<Private>) -> (String, String) {
    let ec: EcKey<Private> = k.ec_key().unwrap();
    let mut ctx = BigNumContext::new().unwrap();
    let (mut x, mut y) = (BigNum::new().unwrap(), BigNum::new().unwrap());
    ec.public_key().affine_coordinates(ec.group(), &mut x, &mut y, &mut ctx).unwrap();
    (b64(&x.to_vec_padded(32).unwrap()), b64(&y.to_vec_padded(32).unwrap()))
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    match a.get(1).map(String::as_str) {
        Some("jwk") if a.len() == 5 => jwk(&a[2], &a[3], &a[4]),
        Some("mint") if a.len() == 8 || a.len() == 9 => mint(&a[2..]),
        Some("dpop-token") if a.len() == 5 => dpop_token(&a[2], &a[3], &a[4]),
        Some("dpop") if a.len() == 9 => dpop(&a[2..]),
        _ => die("usage: bench-mint jwk ALG KEYFILE KID | mint ALG KEY KID|- COUNT OUTPREFIX FILES [X5T] \
                  | dpop-token KEYFILE KID PROOFKEYFILE | dpop PROOFKEYFILE TOKENFILE URL COUNT OUTPREFIX FILES TAG"),
    }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// The DPoP proof key: its public JWK (members in RFC 7638 order, which is also the order of the
/// thumbprint input) and its RFC 7638 thumbprint.
fn proof_key(file: &str) -> (PKey<Private>, String, String) {
    let k = match load("ES256", file) {
        Key::Ec(k) => k,
        _ => unreachable!(),
    };
    let (x, y) = ec_xy(&k);
    // RFC 7638 section 3.2: the required members only, lexicographic order, no whitespace.
    let jwk = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    let jkt = b64(&hash(MessageDigest::sha256(), jwk.as_bytes()).unwrap());
    (k, jwk, jkt)
}

fn dpop_token(key: &str, kid: &str, proof_key_file: &str) {
    let (_, _, jkt) = proof_key(proof_key_file);
    let k = load("ES256", key);
    let now = now_secs();
    let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": kid});
    let claims = serde_json::json!({"sub": "bench", "iat": now, "exp": now + 30 * 86400,
        "jti": format!("bench-dpop-{now}"), "cnf": {"jkt": jkt}});
    let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    let sig = sign(&k, input.as_bytes());
    println!("{input}.{}", b64(&sig));
}

fn dpop(a: &[String]) {
    let (key_file, token_file, url) = (a[0].clone(), a[1].clone(), a[2].clone());
    let count: usize = a[3].parse().unwrap_or_else(|_| die("COUNT"));
    let prefix = a[4].clone();
    let files: usize = a[5].parse().ok().filter(|&n| n > 0).unwrap_or_else(|| die("FILES"));
    let tag = a[6].clone();
    let token = std::fs::read_to_string(&token_file).unwrap_or_else(|e| die(&format!("{token_file}: {e}")));
    let token = token.lines().next().unwrap_or_else(|| die("empty token file")).trim().to_string();
    if token.is_empty() || token.contains(' ') {
        die("the token file must hold one token on its first line");
    }
    let (_, jwk, _) = proof_key(&key_file);
    let header = format!(r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{jwk}}}"#);
    let h64 = b64(header.as_bytes());
    let ath = b64(&hash(MessageDigest::sha256(), token.as_bytes()).unwrap());
    let htu = serde_json::Value::from(url).to_string(); // a JSON string, quoted and escaped
    let now = now_secs();
    let start = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(count.max(1));
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let (key_file, h64, ath, htu, tag) = (key_file.clone(), h64.clone(), ath.clone(), htu.clone(), tag.clone());
            std::thread::spawn(move || {
                let k = load("ES256", &key_file);
                let mut out = Vec::with_capacity(count / workers + 1);
                let mut i = w;
                while i < count {
                    let claims = format!(
                        r#"{{"jti":"{tag}-{start}-{i}","htm":"GET","htu":{htu},"iat":{now},"ath":"{ath}"}}"#
                    );
                    let input = format!("{h64}.{}", b64(claims.as_bytes()));
                    let sig = sign(&k, input.as_bytes());
                    out.push(format!("{input}.{}", b64(&sig)));
                    i += workers;
                }
                out
            })
        })
        .collect();
    let parts: Vec<Vec<String>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    write_spread(&prefix, files, count, |i| format!("{token} {}", parts[i % workers][i / workers]));
}

/// Writes item 0..count, one a line, round-robin over <prefix>.0 .. <prefix>.<files-1>.
fn write_spread(prefix: &str, files: usize, count: usize, item: impl Fn(usize) -> String) {
    let mut outs: Vec<BufWriter<std::fs::File>> = (0..files)
        .map(|f| {
            let p = format!("{prefix}.{f}");
            BufWriter::new(std::fs::File::create(&p).unwrap_or_else(|e| die(&format!("{p}: {e}"))))
        })
        .collect();
    for i in 0..count {
        writeln!(outs[i % files], "{}", item(i)).unwrap();
    }
    for mut o in outs {
        o.flush().unwrap();
    }
}

fn mint(a: &[String]) {
    let (alg, key, kid) = (a[0].clone(), a[1].clone(), a[2].clone());
    let count: usize = a[3].parse().unwrap_or_else(|_| die("COUNT"));
    let prefix = a[4].clone();
    let files: usize = a[5].parse().ok().filter(|&n| n > 0).unwrap_or_else(|| die("FILES"));
    let x5t = a.get(6).cloned();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let mut header = serde_json::json!({"alg": alg, "typ": "JWT"});
    if kid != "-" {
        header["kid"] = kid.clone().into();
    }
    let h64 = b64(header.to_string().as_bytes());
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(count.max(1));
    // Worker w makes tokens w, w+workers, ...; each returns (index, token) in order.
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let (alg, key, h64, x5t) = (alg.clone(), key.clone(), h64.clone(), x5t.clone());
            std::thread::spawn(move || {
                let k = load(&alg, &key);
                let mut out = Vec::with_capacity(count / workers + 1);
                let mut i = w;
                while i < count {
                    let mut claims = serde_json::json!({"sub":"bench","iat":now,"exp":now + 30 * 86400,
                        "jti": format!("bench-{now}-{i}")});
                    if let Some(t) = &x5t {
                        claims["cnf"] = serde_json::json!({ "x5t#S256": t });
                    }
                    let input = format!("{h64}.{}", b64(claims.to_string().as_bytes()));
                    let sig = sign(&k, input.as_bytes());
                    out.push(format!("{input}.{}", b64(&sig)));
                    i += workers;
                }
                out
            })
        })
        .collect();
    let parts: Vec<Vec<String>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    write_spread(&prefix, files, count, |i| parts[i % workers][i / workers].clone());
}
