#!/usr/bin/env bash
# test-suite/golden/run.sh [--update] - golden tests of the compiler's output.
#   err/NAME.ckm      -> NAME.err : stderr of `ckc --emit=ir NAME.ckm`, exit 1
#   ir/NAME.ckm       -> NAME.ir  : stdout of `ckc --emit=ir NAME.ckm`, exit 0
#   samples/NAME.ir, samples/NAME.c : --emit=ir and --emit=c of samples/NAME.ckm
# A first line `// ckc-flags: ...` in a .ckm adds flags. Paths are relative to
# the repository root so diagnostics are stable. --update rewrites expectations.
set -u
cd "$(dirname "$0")/../.."
CKC="${CKC:-build/ckc}"
update=0
[ "${1:-}" = "--update" ] && update=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0

flags_of() { head -n 1 "$1" | sed -n 's|^// ckc-flags: ||p'; }

check() { # name expected actual
  if [ "$update" = 1 ]; then
    if ! cmp -s "$3" "$2" 2>/dev/null; then cp "$3" "$2"; echo "updated $2"; fi
    echo "PASS $1"
  elif [ ! -f "$2" ]; then
    echo "FAIL $1 (no expectation $2; run make golden-update)"; status=1
  elif cmp -s "$2" "$3"; then
    echo "PASS $1"
  else
    echo "FAIL $1"; diff -u "$2" "$3" | head -n 40; status=1
  fi
}

for f in test-suite/golden/err/*.ckm; do
  [ -e "$f" ] || continue
  n=${f%.ckm}
  # shellcheck disable=SC2046
  timeout 20 "$CKC" $(flags_of "$f") --emit=ir "$f" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  if [ "$rc" -ne 1 ]; then echo "FAIL golden/err/$(basename "$n") (exit $rc, expected 1)"; status=1; continue; fi
  check "golden/err/$(basename "$n")" "$n.err" "$tmp/err"
done

for f in test-suite/golden/ir/*.ckm; do
  [ -e "$f" ] || continue
  n=${f%.ckm}
  # shellcheck disable=SC2046
  timeout 20 "$CKC" --emit=ir $(flags_of "$f") "$f" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  if [ "$rc" -ne 0 ]; then echo "FAIL golden/ir/$(basename "$n") (exit $rc)"; head -n 5 "$tmp/err"; status=1; continue; fi
  check "golden/ir/$(basename "$n")" "$n.ir" "$tmp/out"
done

mkdir -p test-suite/golden/samples
for f in samples/*.ckm; do
  [ -e "$f" ] || continue
  b=$(basename "$f" .ckm)
  for kind in ir c; do
    timeout 20 "$CKC" --emit=$kind "$f" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    if [ "$rc" -ne 0 ]; then echo "FAIL golden/samples/$b.$kind (exit $rc)"; head -n 5 "$tmp/err"; status=1; continue; fi
    check "golden/samples/$b.$kind" "test-suite/golden/samples/$b.$kind" "$tmp/out"
  done
done
exit $status
