#!/usr/bin/env bash
# Runs clippy and the whole test suite. Installs what the tests need first (idempotent): the Mosquitto
# command-line clients that the integration tests drive the broker with, the Mosquitto broker
# that the load tool's TLS and WebSocket tests run against, and paho-mqtt for Python.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v mosquitto_pub >/dev/null 2>&1 || need_apt+=(mosquitto-clients)
[ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

# paho-mqtt (Python), which the QoS 2 interoperability tests drive, in a virtual environment of
# the repository's own (target/pyenv; the tests find it there).
if ! target/pyenv/bin/python -c 'import paho.mqtt' >/dev/null 2>&1; then
  python3 -m venv target/pyenv
  target/pyenv/bin/pip install --quiet --disable-pip-version-check 'paho-mqtt>=2,<3'
fi

# glommio needs locked memory for its io_uring rings; raise the soft limit where allowed.
ulimit -l unlimited 2>/dev/null || ulimit -l "$(ulimit -H -l)" 2>/dev/null || true

# Lints first: warnings (missing docs, unwrap on input, RefCell borrows held across an await)
# fail the run like a failing test.
cargo clippy --workspace --all-targets --locked -- -D warnings

exec cargo test --workspace --locked "$@"
