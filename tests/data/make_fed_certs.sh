#!/bin/sh
# make_fed_certs.sh DIR: a test federation PKI in DER files (see docs/transport.md).
#   DIR/ca.der                      the federation CA certificate
#   DIR/node-a.der, node-a.key.der  node A, signed by the CA
#   DIR/node-b.der, node-b.key.der  node B, signed by the CA
#   DIR/rogue.der, rogue.key.der    a node signed by ANOTHER CA (must be refused)
# Ed25519 keys; certificates valid for ten years. Needs certtool (gnutls-bin).
set -eu
dir=$1
mkdir -p "$dir"
cd "$dir"
cat > ca.tmpl <<'T'
cn = "quicprochat test federation CA"
ca
cert_signing_key
expiration_days = 3650
T
ca() {   # ca NAME: a self-signed CA
    certtool --generate-privkey --key-type=ed25519 --outfile "$1.key.pem" 2>/dev/null
    certtool --generate-self-signed --load-privkey "$1.key.pem" --template ca.tmpl \
        --outfile "$1.pem" 2>/dev/null
}
node() {   # node NAME CA: a node certificate for TLS client and server use
    printf 'cn = "%s"\ndns_name = "%s"\ntls_www_server\ntls_www_client\nsigning_key\nexpiration_days = 3650\n' \
        "$1" "$1" > "$1.tmpl"
    certtool --generate-privkey --key-type=ed25519 --outfile "$1.key.pem" 2>/dev/null
    certtool --generate-certificate --load-privkey "$1.key.pem" --load-ca-certificate "$2.pem" \
        --load-ca-privkey "$2.key.pem" --template "$1.tmpl" --outfile "$1.pem" 2>/dev/null
    certtool --certificate-info --infile "$1.pem" --outder --outfile "$1.der" >/dev/null
    certtool --key-info --infile "$1.key.pem" --outder --outfile "$1.key.der" >/dev/null
}
ca ca
ca other-ca
node node-a ca
node node-b ca
node rogue other-ca
certtool --certificate-info --infile ca.pem --outder --outfile ca.der >/dev/null
rm -f ./*.tmpl ./*.pem
