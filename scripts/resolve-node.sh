#!/usr/bin/env bash
# Install the Node tools declared in node/package.json (locked by node/package-lock.json) into
# .cache/node/: kinesalite, the local stack's Kinesis server, and its launcher kinesis-server.js.
# Re-runs only when the lock file changed (a stamp holds its hash), so `make setup` is cheap.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.cache/node
stamp=$out/.lock.sha256
want=$(cat node/package.json node/package-lock.json node/kinesis-server.js | sha256sum | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$want" && -d $out/node_modules ]]; then
  echo "Node tools up to date in $out"
  exit 0
fi
command -v npm >/dev/null || { echo "npm not found: install Node.js (apt-get install nodejs npm)"; exit 1; }
rm -rf "$out"
mkdir -p "$out"
cp node/package.json node/package-lock.json node/kinesis-server.js "$out/"
echo "installing Node tools from the npm registry..."
# exactly the lock file's versions and integrity hashes; no scripts run at install
(cd "$out" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error)
echo "$want" >"$stamp"
du -sh "$out/node_modules" | sed 's/^/  /'
