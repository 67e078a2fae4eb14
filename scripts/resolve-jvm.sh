#!/usr/bin/env bash
# Resolve the JVM components declared in jvm/pom.xml from Maven Central into .cache/jvm/.
# Re-runs only when the manifest changed (a stamp holds its hash), so `make setup` is cheap.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.cache/jvm
stamp=$out/.pom.sha256
# the S3 sink is built from source here: its code is part of the manifest
want=$(cat jvm/pom.xml jvm/settings.xml jvm/s3-sink/pom.xml $(find jvm/s3-sink/src/main -type f | sort) \
  | sha256sum | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
  echo "JVM components up to date in $out"
  exit 0
fi
command -v mvn >/dev/null || { echo "mvn not found: install Maven (apt-get install maven)"; exit 1; }
rm -rf "$out/kafka" "$out/plugins" "$out/spark" "$out/s3proxy"
for profile in kafka s3-sink spark s3proxy; do
  echo "resolving JVM profile '$profile' from Maven Central..."
  mvn -B -q -Dstyle.color=never -s jvm/settings.xml -f jvm/pom.xml -P "$profile" package
done
echo "$want" >"$stamp"
du -sh "$out"/* | sed 's/^/  /'
