#!/usr/bin/env bash
# Builds the pinned Go programs that tests need (MinIO, kube-apiserver, etcd, kubectl,
# helm, k6) into a cache outside the repo, keyed by name and the hash of the pinning
# go.mod/go.sum, so a second run costs nothing. Each tool is a folder tools/<name>/ with
# a go.mod that pins the module (and any replacements) and a `package` line naming what
# to build in tools/<name>/build.env (PKG=module/path/cmd/name; optional LDFLAGS="-X ...").
# Usage: tools/build.sh [name...]   (no names: every tool)
set -euo pipefail
cd "$(dirname "$0")"

CACHE="${SESSIONTRACK_TOOLS_CACHE:-$HOME/.cache/sessiontrack/tools}"
if [ "$#" -gt 0 ]; then
  tool_dirs=()
  for name in "$@"; do
    if [ ! -f "./$name/go.mod" ]; then
      echo "tools: unknown tool '$name' (expected tools/$name/go.mod)" >&2
      exit 1
    fi
    tool_dirs+=("./$name")
  done
else
  mapfile -t tool_dirs < <(find . -mindepth 2 -maxdepth 2 -name go.mod -printf '%h\n' | sort)
fi

if [ "${#tool_dirs[@]}" -eq 0 ]; then
  echo "tools: no Go tools are pinned yet; the ingest/WAL/SDK tests need none"
  exit 0
fi
if ! command -v go >/dev/null; then
  echo "tools: Go is required to build ${tool_dirs[*]} (install Go >= 1.26 and rerun make tools)" >&2
  exit 1
fi

mkdir -p "$CACHE/bin"
for dir in "${tool_dirs[@]}"; do
  name="$(basename "$dir")"
  PKG="" LDFLAGS=""
  # shellcheck disable=SC1091
  source "$dir/build.env"
  # LDFLAGS (optional: version stamps a plain `go build` leaves empty) joins the key only when
  # set, so tools without it keep the key they always had.
  key="$( (cat "$dir/go.mod" "$dir/go.sum" 2>/dev/null; [ -z "$LDFLAGS" ] || echo "$LDFLAGS") | sha256sum | cut -c1-16)"
  out="$CACHE/$name-$key"
  if [ ! -x "$out/$name" ]; then
    echo "tools: building $name ($PKG)"
    (cd "$dir" && GOFLAGS=-mod=readonly go build -trimpath -ldflags "$LDFLAGS" -o "$out/$name" "$PKG")
  fi
  ln -sfn "$out/$name" "$CACHE/bin/$name"
  echo "tools: $name -> $CACHE/bin/$name"
done
