#!/usr/bin/env bash
# Guards the wire contract: buf lint, buf breaking against main, and a check that the
# generated code in packages/proto matches what buf.gen.yaml produces from protos/.
set -euo pipefail
cd "$(dirname "$0")/.."

npx buf lint protos

if git rev-parse --verify --quiet main >/dev/null && git cat-file -e main:protos/buf.yaml 2>/dev/null; then
  npx buf breaking protos --against ".git#branch=main,subdir=protos"
else
  echo "buf breaking: main has no protos/ yet; nothing to compare against"
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
sed "s#out: packages/proto/src/gen#out: $tmp/gen#" buf.gen.yaml >"$tmp/buf.gen.yaml"
npx buf generate --template "$tmp/buf.gen.yaml"
if ! diff -r "$tmp/gen" packages/proto/src/gen >"$tmp/diff"; then
  head -40 "$tmp/diff"
  echo "packages/proto is stale: protos/ changed without regenerating. Run \`make proto\` and commit the result." >&2
  exit 1
fi
echo "generated code is up to date"
