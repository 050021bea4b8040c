#!/usr/bin/env bash
# Makes sure what the tests talk to is running: PostgreSQL and Redis on 127.0.0.1 (started the
# way this machine kind starts them), and Debian's docker-registry (CNCF distribution 2.8),
# chromium and pgbouncer installed. Idempotent and quick when everything is already there. Run by `npm test` (pretest)
# and `npm run bench` (prebench).
set -euo pipefail

say() { echo "[test-services] $*" >&2; }

if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  say "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  say "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
# install <executable> <package> <what for>: Debian's package, when its executable is missing.
install() {
  if [ -x "$1" ]; then
    return
  fi
  if [ "$(id -u)" != 0 ]; then
    say "Debian's $2 package is needed ($3): sudo apt-get install -y $2"
    exit 1
  fi
  say "installing Debian's $2 ($3)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}
# The docker-registry package enables a system registry on :5000, and pgbouncer one on :6432;
# tests start their own on free ports.
install /usr/bin/docker-registry docker-registry "CNCF distribution 2.8, the tests' registry"
install /usr/bin/chromium chromium "the ownership page's browser test"
install /usr/sbin/pgbouncer pgbouncer "the transaction-pooling test in test/distributed/"

for _ in $(seq 1 50); do
  if pg_isready -h 127.0.0.1 -p 5432 -q && redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    exit 0
  fi
  sleep 0.2
done
say "PostgreSQL or Redis did not come up"
exit 1
