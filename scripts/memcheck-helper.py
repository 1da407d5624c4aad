#!/usr/bin/env python3
"""Helper of scripts/memcheck (not run by hand): mints the corpus's tokens and DPoP proofs, and
summarises valgrind's logs.

  memcheck-helper.py setup DIR            keys, JWKS file, AWS ALB key (PEM), quoted JWK, tokens
                                          (DIR/tokens.env), forwarded certificate headers
                                          (DIR/forwarded/<format>)
  memcheck-helper.py proof DIR METHOD URL a fresh RFC 9449 proof for DIR's DPoP key and token
  memcheck-helper.py summary DIR          reads DIR/vg.*.log, prints the summary, exits 1 when
                                          an invalid access or a leak attributable to the module
                                          was found
  memcheck-helper.py drive DIR BASE N     sends N requests of the corpus over keep-alive TLS
                                          connections (none, client A, client B certificates),
                                          prints one JSON line: sent, unexpected, by status
  memcheck-helper.py rss DIR              the parent's and its children's resident set (KiB)
"""
import base64
import glob
import hashlib
import json
import os
import re
import sys
import time
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def load_or_make(path, make):
    if os.path.exists(path):
        with open(path, "rb") as f:
            return serialization.load_pem_private_key(f.read(), None)
    key = make()
    with open(path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return key


def rsa_jwk(key, kid):
    n = key.public_key().public_numbers()
    return {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
            "n": b64u(n.n.to_bytes((n.n.bit_length() + 7) // 8, "big")), "e": b64u(n.e.to_bytes(3, "big"))}


def ec_jwk(key):
    n = key.public_key().public_numbers()
    return {"kty": "EC", "crv": "P-256", "x": b64u(n.x.to_bytes(32, "big")), "y": b64u(n.y.to_bytes(32, "big"))}


def rs256(key, header, claims):
    signing = b64u(json.dumps(header).encode()) + "." + b64u(json.dumps(claims).encode())
    sig = key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing + "." + b64u(sig)


def es256(key, header, claims):
    signing = b64u(json.dumps(header).encode()) + "." + b64u(json.dumps(claims).encode())
    r, s = decode_dss_signature(key.sign(signing.encode(), ec.ECDSA(hashes.SHA256())))
    return signing + "." + b64u(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def es256_padded(key, header, claims):
    """As an AWS ALB signs x-amzn-oidc-data: base64url segments with their `=` padding."""
    def enc(b):
        return base64.urlsafe_b64encode(b).decode()
    signing = enc(json.dumps(header).encode()) + "." + enc(json.dumps(claims).encode())
    r, s = decode_dss_signature(key.sign(signing.encode(), ec.ECDSA(hashes.SHA256())))
    return signing + "." + enc(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


ALB_ARN = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/memcheck/50dc6c495c0c9188"
ALB_OTHER_ARN = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/other/60dc6c495c0c9188"
ALB_KID = "09d4fa17-223e-40fa-b280-894e843d701f"


def urlencode(text):
    """Every byte but RFC 3986 unreserved ones percent-encoded (nginx $ssl_client_escaped_cert)."""
    keep = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
    return "".join(chr(b) if b in keep else f"%{b:02X}" for b in text.encode())


def forwarded(d):
    """The header values a TLS terminator forwards client certificate A in, one file per
    mtls.header.format, and B's in the default format (a certificate the token is not bound to)."""
    os.makedirs(f"{d}/forwarded", exist_ok=True)
    pem_a = open(f"{d}/client-a.crt").read()
    der_a = x509.load_pem_x509_certificate(pem_a.encode()).public_bytes(serialization.Encoding.DER)
    values = {
        "pem-urlencoded": urlencode(pem_a),
        "pem": pem_a.strip().replace("\n", " "),
        "der-base64": base64.b64encode(der_a).decode(),
        "xfcc": 'By=spiffe://cluster.local/ns/api;Hash=11;Cert="' + urlencode(pem_a) + '";Subject="CN=client A"',
        "other": urlencode(open(f"{d}/client-b.crt").read()),
    }
    for name, value in values.items():
        with open(f"{d}/forwarded/{name}", "w") as f:
            f.write(value)


def thumb_cert(path):
    with open(path, "rb") as f:
        der = x509.load_pem_x509_certificate(f.read()).public_bytes(serialization.Encoding.DER)
    return b64u(hashlib.sha256(der).digest())


def jkt(jwk):
    canon = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"))
    return b64u(hashlib.sha256(canon.encode()).digest())


def setup(d):
    issuer = load_or_make(f"{d}/issuer.pem", lambda: rsa.generate_private_key(65537, 2048))
    remote = load_or_make(f"{d}/remote.pem", lambda: rsa.generate_private_key(65537, 2048))
    other = load_or_make(f"{d}/other.pem", lambda: rsa.generate_private_key(65537, 2048))
    dpop = load_or_make(f"{d}/dpop.pem", lambda: ec.generate_private_key(ec.SECP256R1()))
    alb = load_or_make(f"{d}/alb.pem", lambda: ec.generate_private_key(ec.SECP256R1()))
    os.makedirs(f"{d}/keys/alb", exist_ok=True)
    with open(f"{d}/keys/alb/{ALB_KID}", "wb") as f:  # served at <alb_base_url>/<kid>
        f.write(alb.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo))
    forwarded(d)
    with open(f"{d}/keys/jwks.json", "w") as f:
        json.dump({"keys": [rsa_jwk(remote, "r1")]}, f)
    jwk = json.dumps(rsa_jwk(issuer, "one"), separators=(",", ":"))
    with open(f"{d}/jwk.arg", "w") as f:  # one Apache argument: quoted, inner quotes escaped
        f.write('"' + jwk.replace("\\", "\\\\").replace('"', '\\"') + '"')
    now = int(time.time())
    base = {"sub": "alice", "iss": "https://issuer.example", "iat": now, "exp": now + 7200, "scope": "read"}
    hdr = {"alg": "RS256", "kid": "one", "typ": "at+jwt"}
    good = rs256(issuer, hdr, base)
    # The header and the user claims an ALB writes (no exp in the payload).
    alb_hdr = {"typ": "JWT", "kid": ALB_KID, "alg": "ES256", "iss": "https://idp.example",
               "client": "alb-client", "signer": ALB_ARN, "exp": now + 7200}
    user = {"sub": "alice", "name": "Alice", "email": "alice@example.test"}
    tokens = {
        "GOOD": good,
        "EXPIRED": rs256(issuer, hdr, dict(base, iat=now - 600, exp=now - 60)),
        "BADSIG": good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"),
        "OTHERKEY": rs256(other, hdr, base),
        "MTLS": rs256(issuer, hdr, dict(base, cnf={"x5t#S256": thumb_cert(f"{d}/client-a.crt")})),
        "REMOTE": rs256(remote, dict(hdr, kid="r1"), base),
        "REMOTE_UNKNOWN_KID": rs256(remote, dict(hdr, kid="nope"), base),
        "DPOP": rs256(issuer, hdr, dict(base, cnf={"jkt": jkt(ec_jwk(dpop))})),
        "ALB": es256_padded(alb, alb_hdr, user),
        "ALB_OTHER_SIGNER": es256_padded(alb, dict(alb_hdr, signer=ALB_OTHER_ARN), user),
        "ALB_ARN": ALB_ARN,
    }
    with open(f"{d}/tokens.env", "w") as f:
        for k, v in tokens.items():
            f.write(f"{k}={v}\n")


def proof(d, method, url):
    with open(f"{d}/dpop.pem", "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    token = dict(line.strip().split("=", 1) for line in open(f"{d}/tokens.env"))["DPOP"]
    claims = {"jti": str(uuid.uuid4()), "htm": method, "htu": url, "iat": int(time.time()),
              "ath": b64u(hashlib.sha256(token.encode()).digest())}
    print(es256(key, {"typ": "dpop+jwt", "alg": "ES256", "jwk": ec_jwk(key)}, claims))


def proof_for(key, token, method, url):
    claims = {"jti": str(uuid.uuid4()), "htm": method, "htu": url, "iat": int(time.time()),
              "ath": b64u(hashlib.sha256(token.encode()).digest())}
    return es256(key, {"typ": "dpop+jwt", "alg": "ES256", "jwk": ec_jwk(key)}, claims)


def drive(d, base, n):
    """The corpus of scripts/memcheck, n requests, on keep-alive connections (a new one when the
    server closes one, e.g. after a refusal or at a graceful restart). The untrusted peer's
    requests leave from 127.0.0.2."""
    import http.client
    import ssl
    from urllib.parse import urlsplit
    host, port = urlsplit(base).hostname, urlsplit(base).port
    tokens = dict(line.strip().split("=", 1) for line in open(f"{d}/tokens.env"))
    fwd = {name: open(f"{d}/forwarded/{name}").read() for name in os.listdir(f"{d}/forwarded")}
    status_page = "SetHandler server-status" in open(f"{d}/httpd.conf").read()
    with open(f"{d}/dpop.pem", "rb") as f:
        dpop_key = serialization.load_pem_private_key(f.read(), None)

    def context(cert):
        c = ssl.create_default_context(cafile=f"{d}/server.crt")
        if cert:
            c.load_cert_chain(f"{d}/{cert}.crt", f"{d}/{cert}.key")
        return c

    contexts = {None: context(None), "a": context("client-a"), "b": context("client-b")}
    conns = {}

    def send(cert, path, headers, method="GET", source=None, challenge=None):
        """The status, or -1 when the 401's challenge lacks `challenge`, 0 when no answer."""
        key = (cert, source)
        for attempt in range(3):
            conn = conns.get(key)
            if conn is None:
                conn = conns[key] = http.client.HTTPSConnection(
                    host, port, context=contexts[cert], timeout=60,
                    source_address=(source, 0) if source else None)
            try:
                conn.request(method, path, headers=headers)
                r = conn.getresponse()
                r.read()
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conns.pop(key, None)
                if challenge and challenge not in r.getheader("WWW-Authenticate", ""):
                    return -1
                return r.status
            except (http.client.HTTPException, OSError):
                conn.close()
                conns.pop(key, None)
                if attempt == 2:
                    return 0
                time.sleep(0.2)

    def bearer(t, **more):
        return dict({"Authorization": f"Bearer {t}"}, **more)

    def row(want, path, headers, cert=None, method="GET", source=None, challenge=None):
        return (want, path, headers, dict(cert=cert, method=method, source=source, challenge=challenge))

    well_known = "/.well-known/oauth-protected-resource/api"
    corpus = [
        row(200, "/jwk/ok", lambda: bearer(tokens["GOOD"])),
        row(401, "/jwk/ok", lambda: {}),
        row(401, "/jwk/ok", lambda: {"Authorization": "Basic YWxpY2U6cHc="}),
        row(401, "/jwk/ok", lambda: bearer("abc.def")),
        row(401, "/jwk/ok", lambda: bearer(tokens["BADSIG"])),
        row(401, "/jwk/ok", lambda: bearer(tokens["OTHERKEY"])),
        row(401, "/jwk/ok", lambda: bearer(tokens["EXPIRED"])),
        row(200, "/mtls/ok", lambda: bearer(tokens["MTLS"]), cert="a"),
        row(401, "/mtls/ok", lambda: bearer(tokens["MTLS"]), cert="b"),
        row(401, "/mtls/ok", lambda: bearer(tokens["MTLS"])),
        row(200, "/remote/ok", lambda: bearer(tokens["REMOTE"])),
        row(401, "/remote/ok", lambda: bearer(tokens["REMOTE_UNKNOWN_KID"])),
        row(200, "/file/ok", lambda: bearer(tokens["REMOTE"])),
        row(401, "/file/ok", lambda: bearer(tokens["REMOTE_UNKNOWN_KID"])),
        row(401, "/claim/ok", lambda: bearer(tokens["GOOD"])),
        row(401, "/dpop/ok", lambda: bearer(tokens["DPOP"])),
        row(200, "/metrics", lambda: {}),
        row(200, well_known, lambda: {}),
        row(405, well_known, lambda: {}, method="POST"),
        row(401, "/jwk/ok", lambda: {}, challenge="resource_metadata="),
        row(200, "/fwd/ok", lambda: bearer(tokens["MTLS"], **{"X-SSL-Client-Cert": fwd["pem-urlencoded"]})),
        row(200, "/fwd-pem/ok", lambda: bearer(tokens["MTLS"], **{"X-Client-Pem": fwd["pem"]})),
        row(200, "/fwd-der/ok", lambda: bearer(tokens["MTLS"], **{"X-Client-Der": fwd["der-base64"]})),
        row(200, "/fwd-xfcc/ok", lambda: bearer(tokens["MTLS"], **{"X-Forwarded-Client-Cert": fwd["xfcc"]})),
        row(401, "/fwd/ok", lambda: bearer(tokens["MTLS"], **{"X-SSL-Client-Cert": fwd["other"]})),
        row(401, "/fwd/ok", lambda: bearer(tokens["MTLS"], **{"X-SSL-Client-Cert": "%%%garbage"})),
        row(401, "/fwd/ok", lambda: bearer(tokens["MTLS"], **{"X-SSL-Client-Cert": fwd["pem-urlencoded"]}),
            source="127.0.0.2"),
        row(200, "/alb/ok", lambda: {"x-amzn-oidc-data": tokens["ALB"]}),
        row(401, "/alb/ok", lambda: {"x-amzn-oidc-data": tokens["ALB_OTHER_SIGNER"]}),
    ]
    if status_page:
        corpus.append(row(200, "/server-status?auto", lambda: {}))
    by_status, sent, unexpected = {}, 0, 0

    def count(want, got):
        nonlocal sent, unexpected
        sent += 1
        by_status[f"{got}/{want}"] = by_status.get(f"{got}/{want}", 0) + 1
        unexpected += got != want

    def dpop(url, **more):
        proof = proof_for(dpop_key, tokens["DPOP"], "GET", url)
        return dict({"Authorization": f"DPoP {tokens['DPOP']}", "DPoP": proof}, **more)

    while sent < n:
        for want, path, headers, how in corpus:
            count(want, send(path=path, headers=headers(), **how))
        h = dpop(base + "/dpop/ok")
        count(200, send(None, "/dpop/ok", h))
        count(401, send(None, "/dpop/ok", h))  # the same proof again: a replay
        # The public URL from a trusted peer's X-Forwarded-Proto/Host is the one the proof names.
        h = dpop("https://api.example.com/dpop/ok", **{"X-Forwarded-Proto": "https",
                                                       "X-Forwarded-Host": "api.example.com"})
        count(200, send(None, "/dpop/ok", h))
    for c in conns.values():
        c.close()
    print(json.dumps({"sent": sent, "unexpected": unexpected, "by_status": by_status}))


def rss(d):
    """KiB resident: httpd's parent (DIR/httpd.pid) and the sum over its children."""
    def vmrss(pid):
        try:
            for line in open(f"/proc/{pid}/status"):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0
    parent = int(open(f"{d}/httpd.pid").read().strip())
    children = [int(p) for p in os.listdir("/proc") if p.isdigit() and _ppid(p) == parent]
    print(vmrss(parent), sum(vmrss(c) for c in children), len(children))


def _ppid(pid):
    try:
        return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


STATIC_INIT = re.compile(r"std::sync::(once_lock::OnceLock<T>::initialize|lazy_lock::LazyLock<T,F>::force)")
OURS = re.compile(r"mod_oauth2|libmod_oauth2|\boauth2_|panic_probe")


def records(text):
    """valgrind's messages: runs of `==pid== ` lines separated by an empty `==pid== ` line."""
    cur = []
    for line in text.splitlines():
        m = re.match(r"^==\d+== ?(.*)$", line)
        if not m:
            continue
        body = m.group(1)
        if body.strip() == "":
            if cur:
                yield cur
            cur = []
        else:
            cur.append(body)
    if cur:
        yield cur


def summary(d):
    logs = sorted(glob.glob(f"{d}/vg.*.log"))
    kinds = {"Invalid read": 0, "Invalid write": 0, "Invalid free": 0, "Mismatched free": 0,
             "uninitialised": 0, "Syscall param": 0, "Source and destination overlap": 0}
    ours = {k: 0 for k in kinds}
    definite_ours, definite_other, definite_static = [], [], []
    unsymbolised = 0
    possible_ours = possible_other = 0
    bytes_ours = bytes_other = 0
    suppressed = 0
    processes = 0
    for path in logs:
        text = open(path, errors="replace").read()
        if "Memcheck, a memory error detector" not in text:
            continue
        processes += 1
        for m in re.finditer(r"ERROR SUMMARY: \d+ errors from \d+ contexts \(suppressed: (\d+)", text):
            suppressed += int(m.group(1))
        for rec in records(text):
            head = rec[0]
            stack = "\n".join(rec)
            mine = bool(OURS.search(stack))
            for k in kinds:
                if k in head:
                    kinds[k] += 1
                    ours[k] += mine
            if "are possibly lost" in head:
                if mine:
                    possible_ours += 1
                else:
                    possible_other += 1
            m = re.match(r"([\d,]+) (?:\([\d,]+ direct, [\d,]+ indirect\) )?bytes in [\d,]+ blocks are definitely lost", head)
            if m:
                n = int(m.group(1).replace(",", ""))
                if re.search(r"by 0x[0-9A-F]+: \?\?\?$", stack, re.M):
                    unsymbolised += 1
                if mine and STATIC_INIT.search(stack):
                    # Made once for a process-wide static (OnceLock/LazyLock) of the module: at
                    # the very end httpd unloads the module (dlclose, seen under -X), unmapping the
                    # static that still points at it. Not a leak; listed apart.
                    definite_static.append((n, os.path.basename(path), stack))
                elif mine:
                    definite_ours.append((n, os.path.basename(path), stack))
                    bytes_ours += n
                else:
                    definite_other.append((n, os.path.basename(path), stack))
                    bytes_other += n
    print(f"valgrind logs: {len(logs)} ({processes} processes under memcheck)")
    for k in kinds:
        print(f"  {k:32s} {kinds[k]:6d}   with a mod_oauth2 frame: {ours[k]}")
    print(f"  definitely lost, mod_oauth2 frame in the stack: {len(definite_ours)} records, {bytes_ours} bytes")
    print(f"  definitely lost, elsewhere (httpd/APR/OpenSSL): {len(definite_other)} records, {bytes_other} bytes")
    print(f"  definitely lost, made once for a static of the module (unmapped when httpd unloads the "
          f"module at exit): {len(definite_static)} records, {sum(n for n, _, _ in definite_static)} bytes")
    print(f"  definitely lost with frames of unknown code (e.g. an unloaded library): {unsymbolised} records")
    print(f"  possibly lost (information: interior pointers, e.g. of live threads at exit): "
          f"{possible_ours} records with a mod_oauth2 frame, {possible_other} elsewhere")
    print(f"  errors suppressed (scripts/memcheck.supp and valgrind's defaults): {suppressed}")
    for n, log, stack in definite_ours[:10]:
        print(f"--- {log}: {n} bytes\n{stack}")
    bad = sum(ours[k] for k in ("Invalid read", "Invalid write", "Invalid free", "Mismatched free"))
    bad += len(definite_ours) + unsymbolised
    return 1 if bad or processes == 0 else 0


if __name__ == "__main__":
    cmd, d = sys.argv[1], sys.argv[2]
    if cmd == "setup":
        setup(d)
    elif cmd == "proof":
        proof(d, sys.argv[3], sys.argv[4])
    elif cmd == "summary":
        sys.exit(summary(d))
    elif cmd == "drive":
        drive(d, sys.argv[3], int(sys.argv[4]))
    elif cmd == "rss":
        rss(d)
    else:
        sys.exit(f"unknown command {cmd}")
