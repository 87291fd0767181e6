#!/usr/bin/env bash
# The secrets `docker compose -f deploy/compose.yaml up` mounts, made once into deploy/secrets/ (git-ignored):
# a CA and the broker's TLS key+certificate, one SCRAM password per principal, the key sandbox verdicts are
# signed with and the key personal data is pseudonymised with. In production these come from the
# platform's secret store instead (deploy/k8s uses Strimzi's user Secrets and Kubernetes Secrets).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p secrets && chmod 700 secrets && cd secrets
umask 077
if [ ! -f kafka-ca.pem ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out kafka-ca.pem -days 825 -subj "/CN=rote compose CA"
  openssl req -newkey rsa:2048 -nodes -keyout kafka.key -out kafka.csr -subj "/CN=kafka"
  printf 'subjectAltName=DNS:kafka,DNS:localhost\nextendedKeyUsage=serverAuth\n' > kafka.ext
  openssl x509 -req -in kafka.csr -CA kafka-ca.pem -CAkey ca.key -CAcreateserial -out kafka.pem -days 825 \
    -extfile kafka.ext
  openssl pkcs8 -topk8 -nocrypt -in kafka.key -out kafka.pkcs8.key
  cat kafka.pkcs8.key kafka.pem kafka-ca.pem > kafka-keystore.pem
  rm -f kafka.csr kafka.ext kafka.key kafka.pkcs8.key
fi
for principal in admin rote-producer rote-worker rote-sandbox rote-runner rote-operator; do
  [ -f "$principal.password" ] || openssl rand -hex 24 > "$principal.password"
done
printf 'password=%s\n' "$(cat admin.password)" > kafka-admin.properties
[ -f result-key ] || openssl rand -hex 32 > result-key
[ -f pseudonym-key ] || openssl rand -hex 32 > pseudonym-key
echo "secrets in $(pwd)"
