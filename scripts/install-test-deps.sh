#!/usr/bin/env bash
# Installs what the tests that drive umpire with other programs need: Debian's Chromium and
# the ChromeDriver of the same version (the browser test), and Python's `websockets` (the
# flooding-client test). Safe to run again; does nothing when they are present.
set -euo pipefail

if python3 -c 'import websockets' 2>/dev/null; then
  echo "python websockets is installed"
else
  python3 -m pip install --quiet 'websockets>=13,<18'
fi

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  echo "chromium and chromedriver are installed"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
chromium --version
chromedriver --version
