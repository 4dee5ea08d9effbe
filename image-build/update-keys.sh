#!/usr/bin/env bash
# The software-update key ceremony (docs/updates.md): a CA and a signing certificate.
#   image-build/update-keys.sh DIR [ORGANISATION]
# Writes DIR/update-ca.key (keep OFFLINE: it only ever signs signer certificates),
# DIR/update-ca.pem (goes into every device's setup file as trust.update_keys),
# DIR/signer.key + DIR/signer.pem (on the build machine; signs bundles; replaceable by a
# new signer from the same CA without touching any device). ECDSA P-256: RAUC's CMS
# signing does not take Ed25519. The signer carries the codeSigning purpose the
# devices' RAUC checks (check-purpose=codesign).
set -euo pipefail
dir=${1:?usage: update-keys.sh DIR [ORGANISATION]}
org=${2:-Ketang}
mkdir -p "$dir"
umask 077
[[ -e "$dir/update-ca.key" ]] && { echo "update-keys: $dir/update-ca.key exists; not overwritten" >&2; exit 1; }
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/update-ca.key"
openssl req -x509 -new -key "$dir/update-ca.key" -sha256 -days 7300 \
  -subj "/O=$org/CN=$org software update CA" \
  -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$dir/update-ca.pem"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/signer.key"
openssl req -new -key "$dir/signer.key" -subj "/O=$org/CN=$org update signer $(date -u +%Y%m%d)" \
  -out "$dir/signer.csr"
printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
  "extendedKeyUsage=codeSigning" "subjectKeyIdentifier=hash" \
  "authorityKeyIdentifier=keyid" > "$dir/signer.ext"
openssl x509 -req -in "$dir/signer.csr" -CA "$dir/update-ca.pem" -CAkey "$dir/update-ca.key" \
  -CAcreateserial -sha256 -days 1825 -extfile "$dir/signer.ext" -out "$dir/signer.pem"
rm -f "$dir/signer.csr" "$dir/signer.ext"
chmod 644 "$dir/update-ca.pem" "$dir/signer.pem"
echo "Put this in ketang-setup.toml (first boot only):"
echo "[trust]"
echo "update_keys = ['''$(cat "$dir/update-ca.pem")''']"
