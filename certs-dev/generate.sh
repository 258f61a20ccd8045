#!/usr/bin/env bash
# Regenerates the DEV-ONLY TLS material in this folder: a P-256 dev CA and a `localhost` server
# certificate it signs (SANs DNS:localhost, IP:127.0.0.1, IP:::1). Never use these in production.
# Usage: certs-dev/generate.sh   (needs only `openssl`; overwrites the files it owns)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

CA_DAYS=3650   # 10 years
# The leaf ends a little before the CA so the chain never outlives its root.
LEAF_DAYS=3600

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# A random positive 128-bit serial; the leading 01 keeps the top bit clear (no sign ambiguity).
serial() { echo "0x01$(openssl rand -hex 15)"; }

echo "==> dev CA (EC P-256, ${CA_DAYS} days)"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -pkeyopt ec_param_enc:named_curve \
    -out "$work/ca-key.pem"
cat > "$work/ca.ext" <<'CNF'
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
CNF
openssl req -new -key "$work/ca-key.pem" -subj "/O=Quicksilver Dev/CN=Quicksilver Dev CA (DO NOT TRUST IN PRODUCTION)" \
    -out "$work/ca.csr"
openssl x509 -req -in "$work/ca.csr" -signkey "$work/ca-key.pem" -sha256 -days "$CA_DAYS" \
    -set_serial "$(serial)" -extfile "$work/ca.ext" -out "$work/ca.pem"

echo "==> localhost server certificate (EC P-256, ${LEAF_DAYS} days)"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -pkeyopt ec_param_enc:named_curve \
    -out "$work/localhost-key.pem"
cat > "$work/localhost.ext" <<'CNF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
CNF
openssl req -new -key "$work/localhost-key.pem" -subj "/O=Quicksilver Dev/CN=localhost" \
    -out "$work/localhost.csr"
openssl x509 -req -in "$work/localhost.csr" -CA "$work/ca.pem" -CAkey "$work/ca-key.pem" -sha256 \
    -days "$LEAF_DAYS" -set_serial "$(serial)" -extfile "$work/localhost.ext" \
    -out "$work/localhost.pem"

openssl verify -CAfile "$work/ca.pem" "$work/localhost.pem"

# genpkey already writes PKCS#8 ("BEGIN PRIVATE KEY"); re-encode to make that explicit.
openssl pkcs8 -topk8 -nocrypt -in "$work/ca-key.pem" -out ca-key.pem
openssl pkcs8 -topk8 -nocrypt -in "$work/localhost-key.pem" -out localhost-key.pem
cp "$work/ca.pem" ca.pem
cp "$work/localhost.pem" localhost.pem
chmod 644 ca.pem localhost.pem ca-key.pem localhost-key.pem

echo "==> wrote $(pwd)/{ca.pem,ca-key.pem,localhost.pem,localhost-key.pem}"
