#!/usr/bin/env bash
# Creates the test PKI and AS signing keys for the local oidc-provider AS, for running
# server.mjs by hand (the integration tests generate their own PKI: tests/common/remote.rs).
# Idempotent: does nothing for files that already exist (use --force to regenerate all).
set -euo pipefail
DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/pki"
mkdir -p "$DIR"; cd "$DIR"
if [[ "${1:-}" == "--force" ]]; then rm -f ./*.key ./*.crt ./*.csr ./*.srl ./*.cnf; fi
[[ -f ca.crt ]] && [[ -f as-rsa.key ]] && { echo "pki exists in $DIR"; exit 0; }
umask 077
ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# 1. test CA
ec ca.key
openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/O=realas/CN=realas test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.crt

# 2. TLS server cert for the AS (and usable by a resource server on localhost)
ec server.key
openssl req -new -key server.key -subj "/O=realas/CN=localhost" -out server.csr
printf "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n" > server.cnf
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -sha256 -extfile server.cnf -out server.crt 2>/dev/null

# 3. CA-issued client certs (tls_client_auth / PKI mTLS). client-other is for negative tests.
for name in client-pki client-other; do
  ec $name.key
  openssl req -new -key $name.key -subj "/O=realas/CN=$name" -out $name.csr
  printf "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\nsubjectAltName=DNS:$name.example.test\n" > $name.cnf
  openssl x509 -req -in $name.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -sha256 -extfile $name.cnf -out $name.crt 2>/dev/null
done

# 4. self-signed client cert (self_signed_tls_client_auth)
ec client-self.key
openssl req -x509 -new -key client-self.key -sha256 -days 3650 -subj "/O=realas/CN=client-self" \
  -addext "extendedKeyUsage=clientAuth" -out client-self.crt

# 5. AS token-signing keys (server.mjs turns them into the JWKS)
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out as-rsa.key 2>/dev/null
ec as-ec.key
openssl genpkey -algorithm ED25519 -out as-ed25519.key
# 6. RSA key of the private_key_jwt client (pkjwt-client)
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rs-pkjwt.key 2>/dev/null
rm -f ./*.csr ./*.cnf
chmod 644 ./*.crt; chmod 600 ./*.key
echo "pki created in $DIR"; ls "$DIR"
