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
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::EcKey;
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
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
            let ec: EcKey<Private> = k.ec_key().unwrap();
            let mut ctx = BigNumContext::new().unwrap();
            let (mut x, mut y) = (BigNum::new().unwrap(), BigNum::new().unwrap());
            ec.public_key().affine_coordinates(ec.group(), &mut x, &mut y, &mut ctx).unwrap();
            serde_json::json!({"kty":"EC","kid":kid,"use":"sig","alg":"ES256","crv":"P-256",
                "x": b64(&x.to_vec_padded(32).unwrap()), "y": b64(&y.to_vec_padded(32).unwrap())})
        }
        Key::Hmac(_) => die("no public JWK for HS256"),
    };
    println!("{v}");
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    match a.get(1).map(String::as_str) {
        Some("jwk") if a.len() == 5 => jwk(&a[2], &a[3], &a[4]),
        Some("mint") if a.len() == 8 || a.len() == 9 => mint(&a[2..]),
        _ => die("usage: bench-mint jwk ALG KEYFILE KID | mint ALG KEY KID|- COUNT OUTPREFIX FILES [X5T]"),
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
    let mut outs: Vec<BufWriter<std::fs::File>> = (0..files)
        .map(|f| {
            let p = format!("{prefix}.{f}");
            BufWriter::new(std::fs::File::create(&p).unwrap_or_else(|e| die(&format!("{p}: {e}"))))
        })
        .collect();
    for i in 0..count {
        let t = &parts[i % workers][i / workers];
        writeln!(outs[i % files], "{t}").unwrap();
    }
    for mut o in outs {
        o.flush().unwrap();
    }
}
