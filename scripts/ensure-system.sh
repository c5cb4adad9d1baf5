#!/usr/bin/env bash
# Make sure the machine has what the tests use: Chromium and its driver, CJK fonts and Pango for
# WeasyPrint, and running PostgreSQL and Redis. Installs Debian packages when run as root.
set -euo pipefail

need=()
for package in chromium chromium-driver fonts-noto-cjk libpango-1.0-0 libpangoft2-1.0-0; do
  dpkg -s "$package" >/dev/null 2>&1 || need+=("$package")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing Debian packages: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "missing Debian packages: ${need[*]} (run: sudo apt-get install ${need[*]})" >&2
    exit 1
  fi
fi

# PostgreSQL and Redis run on every project machine; start them if they were stopped.
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  if command -v redis-server >/dev/null; then
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /tmp --logfile /tmp/redis-orderloom.log || true
  fi
fi
