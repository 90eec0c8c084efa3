#!/usr/bin/env bash
# Makes what deploy/compose.yaml mounts, in deploy/compose/secrets/ (git-ignored), once:
#   tls/ca.crt, tls/tls.crt, tls/tls.key   a CA and alignd's certificate for localhost/127.0.0.1
#   tokens                                 the token file, with one admin token
#   admin.token                            that token (give it to alignctl as ALIGND_TOKEN_FILE)
#   grafana_admin_password                 Grafana's admin password
# Then: ALIGND_CA=deploy/compose/secrets/tls/ca.crt ALIGND_TOKEN_FILE=deploy/compose/secrets/admin.token \
#       alignctl --server 127.0.0.1:50051 health
set -euo pipefail
dir="$(cd "$(dirname "$0")" && pwd)/secrets"
if [[ -e "$dir/tokens" ]]; then echo "secrets: $dir exists; remove it to start over" >&2; exit 0; fi
mkdir -p "$dir/tls"
cd "$dir/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
  -keyout ca.key -out ca.crt -subj "/CN=alignd compose CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout tls.key -out tls.csr \
  -subj "/CN=alignd" 2>/dev/null
printf 'subjectAltName=DNS:localhost,DNS:alignd,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > ext
openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 -out tls.crt \
  -extfile ext 2>/dev/null
rm -f tls.csr ext ca.srl
chmod 0644 tls.key  # read by alignd's user in the container (uid 10001)
cd "$dir"
token="alignd_$(openssl rand -base64 32 | tr '+/' '-_' | tr -d '=\n')"
printf '%s\n' "$token" > admin.token
chmod 0600 admin.token
printf '# sha256(token) principal role\n%s admin admin\n' \
  "$(printf %s "$token" | sha256sum | cut -d' ' -f1)" > tokens
openssl rand -base64 18 > grafana_admin_password
echo "secrets: written to $dir" >&2
