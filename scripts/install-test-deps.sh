#!/usr/bin/env bash
# Installs what the tests that drive umpire with other programs need: Debian's Chromium and
# the ChromeDriver of the same version (the browser test), Debian's redis-server (the Redis
# backend and the several-node tests start their own), and Python's `websockets` (the
# flooding-client test). Safe to run again; does nothing when they are present.
set -euo pipefail

if python3 -c 'import websockets' 2>/dev/null; then
  echo "python websockets is installed"
else
  python3 -m pip install --quiet 'websockets>=13,<18'
fi

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v redis-server >/dev/null || missing+=(redis-server)
if [ ${#missing[@]} -eq 0 ]; then
  echo "chromium, chromedriver and redis-server are installed"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
# Debian starts the packaged Redis as a service; the tests start their own.
(command -v systemctl >/dev/null && $SUDO systemctl disable --now redis-server 2>/dev/null) || true
chromium --version
chromedriver --version
redis-server --version
