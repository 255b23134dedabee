#!/bin/sh
# make_fed_certs.sh DIR: a test federation PKI in DER files (see docs/transport.md).
#   DIR/ca.der                      the federation CA certificate
#   DIR/other-ca.der                another CA (the rogue's)
#   DIR/node-a.der, node-a.key.der  node A, signed by the CA, for a.mesh.test and nodeA.mesh.local
#   DIR/node-b.der, node-b.key.der  node B, signed by the CA, for b.mesh.test and nodeB.mesh.local
#   DIR/node-c.der, node-c.key.der  node C, signed by the CA, for c.mesh.test and nodeC.mesh.local
#   DIR/rogue.der, rogue.key.der    a node signed by ANOTHER CA (must be refused), r.mesh.test
# A node's domains are its certificate's subjectAltName dNSNames (federation_trust = "ca"
# binds a domain to the certificate that names it).
# Ed25519 keys; certificates valid for ten years. Needs certtool (gnutls-bin).
set -eu
dir=$1
mkdir -p "$dir"
cd "$dir"
umask 077   # private keys 0600, as docs/federation.md asks (qpc-server warns otherwise)
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
node() {   # node NAME CA DOMAIN...: a node certificate for TLS client and server use
    n=$1 c=$2
    shift 2
    printf 'cn = "%s"\ntls_www_server\ntls_www_client\nsigning_key\nexpiration_days = 3650\n' \
        "$n" > "$n.tmpl"
    for d in "$@"; do printf 'dns_name = "%s"\n' "$d" >> "$n.tmpl"; done
    set -- "$n" "$c"
    certtool --generate-privkey --key-type=ed25519 --outfile "$1.key.pem" 2>/dev/null
    certtool --generate-certificate --load-privkey "$1.key.pem" --load-ca-certificate "$2.pem" \
        --load-ca-privkey "$2.key.pem" --template "$1.tmpl" --outfile "$1.pem" 2>/dev/null
    certtool --certificate-info --infile "$1.pem" --outder --outfile "$1.der" >/dev/null
    certtool --key-info --infile "$1.key.pem" --outder --outfile "$1.key.der" >/dev/null
}
ca ca
ca other-ca
node node-a ca a.mesh.test nodeA.mesh.local
node node-b ca b.mesh.test nodeB.mesh.local
node node-c ca c.mesh.test nodeC.mesh.local
node rogue other-ca r.mesh.test
certtool --certificate-info --infile ca.pem --outder --outfile ca.der >/dev/null
certtool --certificate-info --infile other-ca.pem --outder --outfile other-ca.der >/dev/null
rm -f ./*.tmpl ./*.pem
