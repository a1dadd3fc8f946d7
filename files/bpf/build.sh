#!/usr/bin/env bash
# Build a BPF object the way the shipped files/bpf/steering.bpf.o is built.
# Usage: build.sh SRC OUT [CLANG_ARG...]
#
# The Makefile (`make bpf`) and the rebuild check in the tests both call this script, so the object
# shipped is provably the source shipped. The compile is reproducible: it runs in the source's
# directory on the bare file name and records "." as the compilation directory, so neither the
# checkout path nor the caller's working directory ends up in the DWARF/BTF. Nothing is stripped:
# libbpf needs the BTF. Extra arguments go to clang (tests build fixtures with -D); the shipped object has none.
set -euo pipefail

if [ "$#" -lt 2 ]; then
    echo "usage: $0 SRC OUT [CLANG_ARG...]" >&2
    exit 2
fi

src_dir=$(cd "$(dirname "$1")" && pwd)
src_name=$(basename "$1")
out_dir=$(cd "$(dirname "$2")" && pwd)
out="$out_dir/$(basename "$2")"

# asm/types.h and friends live under the multiarch include directory (gcc-multilib / linux-libc-dev).
multiarch_include="/usr/include/$(uname -m)-linux-gnu"

tmp=$(mktemp "$out.XXXXXX")
trap 'rm -f "$tmp"' EXIT

cd "$src_dir"
clang -O2 -g -target bpf \
    -I"$multiarch_include" \
    -fdebug-compilation-dir=. \
    "${@:3}" \
    -c "$src_name" -o "$tmp"

chmod 0644 "$tmp"
mv -f "$tmp" "$out"
trap - EXIT
