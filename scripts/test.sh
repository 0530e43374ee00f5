#!/usr/bin/env bash
# Runs the whole test suite. Installs what the tests need first (idempotent): the Mosquitto
# command-line clients that the integration tests drive the broker with, and the Mosquitto broker
# that the load tool's TLS and WebSocket tests run against.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v mosquitto_pub >/dev/null 2>&1 || need_apt+=(mosquitto-clients)
[ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

# glommio needs locked memory for its io_uring rings; raise the soft limit where allowed.
ulimit -l unlimited 2>/dev/null || ulimit -l "$(ulimit -H -l)" 2>/dev/null || true

exec cargo test --workspace --locked "$@"
