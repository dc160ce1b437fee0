#!/usr/bin/env bash
# usage: check-capi-exports.sh LIBTERN.so TERN.H
# Fails unless the library's dynamic symbol table defines exactly the
# functions the header declares (TERN_API lines): every one of them, and
# nothing else (no C++ runtime internals, no tern_uk_* kernels, no Abseil).
set -eu
lib=$1
header=$2
want=$(grep -E '^TERN_API ' "$header" | grep -oE '[ *]tern_[a-z0-9_]+\(' | tr -d ' *(' | sort -u)
# Defined dynamic symbols (nm -D --defined-only), minus the version node.
have=$(nm -D --defined-only "$lib" | awk '$2 != "A" {print $3}' | sed 's/@.*//' | sort -u)
rc=0
extra=$(comm -13 <(echo "$want") <(echo "$have"))
missing=$(comm -23 <(echo "$want") <(echo "$have"))
if [ -n "$extra" ]; then
  echo "FAIL: $lib exports symbols that are not in $header:"
  echo "$extra" | head -20 | sed 's/^/  /'
  echo "  ($(echo "$extra" | wc -l) in all)"
  rc=1
fi
if [ -n "$missing" ]; then
  echo "FAIL: $lib lacks functions that $header declares:"
  echo "$missing" | sed 's/^/  /'
  rc=1
fi
soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
if [ -z "$soname" ]; then
  echo "FAIL: $lib has no SONAME"
  rc=1
fi
if [ $rc -eq 0 ]; then
  echo "ok: $lib (SONAME $soname) exports exactly the $(echo "$want" | wc -l) functions of $header"
fi
exit $rc
