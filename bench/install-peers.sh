#!/usr/bin/env bash
# Installs what bench/compare.py needs, only when missing: the peers from Debian 12 packages
# (Redis, NATS server, Mosquitto, PostgreSQL), their load tools (redis-benchmark, pgbench),
# gnuplot for the plots, and the npm client libraries of bench/clients (npm ci, from the lock).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

packages=(
  redis-server redis-tools          # Redis Streams peer and redis-benchmark
  nats-server                       # NATS JetStream peer
  mosquitto                         # MQTT peer
  postgresql postgresql-contrib     # PostgreSQL peer and pgbench
  gnuplot-nox                       # report plots (PNG)
  nodejs                            # runs the npm clients of the peers
)
missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if ! command -v npm >/dev/null 2>&1; then missing+=(npm); fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-peers: installing ${missing[*]}"
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Debian starts the packaged services; the benchmark starts its own instances on free ports
# and leaves the system ones alone.
if [ ! -d clients/node_modules ] || [ clients/package-lock.json -nt clients/node_modules ]; then
  (cd clients && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "install-peers: ready"
