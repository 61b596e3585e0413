#!/usr/bin/env bash
# Fetches django-websocket-redis itself (seed 002), for the tests that check its own client and
# publisher against umpire: a Python virtual environment in target/ws4redis/venv holding the
# PyPI release 0.6.0 (its RedisPublisher, and the ws4redis.js it ships) with Django and
# redis-py, and jQuery 3 from npm (ws4redis.js needs it). Nothing of theirs is kept in the
# repository. Safe to run again; does nothing when all is there. Prints the folder.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/ws4redis
venv="$out/venv"
mkdir -p "$out"
if ! "$venv/bin/python" -c 'import ws4redis.publisher' 2>/dev/null \
    || [ ! -f "$out/ws4redis.js" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    'Django>=4.2,<5' 'redis>=4.6,<6' 'six'
  # Only what the publisher imports: the package's own dependencies (gevent, for its own
  # WebSocket server) are not used here.
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps \
    'django-websocket-redis==0.6.0'
  js=$("$venv/bin/python" -c 'import ws4redis, os; print(os.path.join(os.path.dirname(ws4redis.__file__), "static/js/ws4redis.js"))')
  cp "$js" "$out/ws4redis.js"
fi
if [ ! -f "$out/jquery.min.js" ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent jquery@3.7.1 >/dev/null && tar xzf jquery-3.7.1.tgz)
  cp "$tmp/package/dist/jquery.min.js" "$out/jquery.min.js"
  rm -rf "$tmp"
fi
echo "$PWD/$out"
