#!/usr/bin/env bash
# usage: install_test.sh BUILD_DIR PREFIX EXAMPLE.c CHECK_GENERATE.py MODEL CC [CFLAGS]
# Installs the build into PREFIX (cmake --install), checks the installed
# files, builds the example against the installed tern.h / libtern.so with
# `pkg-config --cflags --libs tern`, and runs it against the installed tern
# (check_generate.py: greedy tokens equal `tern eval`'s).
set -eu
build=$1 prefix=$2 example=$3 check=$4 model=$5 cc=$6 cflags=${7:-}
rm -rf "$prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null

pc=$(find "$prefix" -name tern.pc -path '*/pkgconfig/*' | head -1)
[ -n "$pc" ] || { echo "FAIL: no tern.pc installed under $prefix"; exit 1; }
export PKG_CONFIG_PATH=$(dirname "$pc")
libdir=$(pkg-config --variable=libdir tern)
for f in "$prefix/include/tern/tern.h" "$prefix/bin/tern" "$libdir/libtern.so"; do
  [ -e "$f" ] || { echo "FAIL: $f is not installed"; exit 1; }
done
soname=$(readelf -d "$libdir/libtern.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ -e "$libdir/$soname" ] || { echo "FAIL: $libdir/$soname (the SONAME) is not installed"; exit 1; }
echo "installed: tern $(pkg-config --modversion tern), $libdir/$soname"
echo "pkg-config --cflags --libs tern: $(pkg-config --cflags --libs tern)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# shellcheck disable=SC2046,SC2086
"$cc" -std=c99 -Wall -Wextra -pedantic-errors $cflags "$example" -o "$work/tern-generate" \
  $(pkg-config --cflags --libs tern)
export LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# The installed library, not the build tree's.
ldd "$work/tern-generate" | grep -q "$libdir/libtern.so" ||
  { echo "FAIL: the example does not load $libdir/libtern.so:"; ldd "$work/tern-generate"; exit 1; }
python3 "$check" --generate "$work/tern-generate" --tern "$prefix/bin/tern" --model "$model" \
  --reference
