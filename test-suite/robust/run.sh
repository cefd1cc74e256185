#!/usr/bin/env bash
# test-suite/robust/run.sh - ckc never crashes. Every hostile input must end
# with exit 1 and a diagnostic (or exit 0 for mutated inputs that happen to be
# valid); never a signal, an internal error (exit 3), a sanitizer report or a
# hang. Inputs are generated deterministically by gen.py.
set -u
cd "$(dirname "$0")/../.."
CKC="${CKC:-build/ckc}"
PY="${PY:-/usr/bin/python3}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0

"$PY" test-suite/robust/gen.py "$tmp" || { echo "FAIL robust/generate"; exit 1; }

# expect NAME FILE WANT_RC MESSAGE_REGEX
expect() {
  local name=$1 file=$2 want=$3 re=$4
  timeout 20 "$CKC" --emit=ir "$file" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ "$rc" -ne "$want" ]; then
    echo "FAIL robust/$name (exit $rc, expected $want)"; head -c 600 "$tmp/err"; echo; status=1; return
  fi
  if grep -qE 'internal error|runtime error|AddressSanitizer|LeakSanitizer' "$tmp/err"; then
    echo "FAIL robust/$name (sanitizer or internal error)"; head -c 600 "$tmp/err"; echo; status=1; return
  fi
  if [ -n "$re" ] && ! grep -qE -- "$re" "$tmp/err"; then
    echo "FAIL robust/$name (message does not match /$re/)"; head -c 600 "$tmp/err"; echo; status=1; return
  fi
  echo "PASS robust/$name"
}

expect empty-file        "$tmp/empty.ckm"        1 'error: .*\[E0'
expect only-comments     "$tmp/comments.ckm"     1 'error: .*\[E0'
expect binary-garbage    "$tmp/garbage.ckm"      1 'error: .*\[E01'
expect nul-bytes         "$tmp/nul.ckm"          1 'invalid character'
expect unterminated-comment "$tmp/ucomment.ckm"  1 'unterminated comment'
expect unterminated-string  "$tmp/ustring.ckm"   1 'unterminated string'
expect deep-parens       "$tmp/deep_parens.ckm"  1 'nesting too deep'
expect deep-brackets     "$tmp/deep_brackets.ckm" 1 'nesting too deep'
expect deep-blocks       "$tmp/deep_blocks.ckm"  1 'nesting too deep'
expect deep-unary        "$tmp/deep_unary.ckm"   1 'nesting too deep'
expect huge-int          "$tmp/huge_int.ckm"     1 'too large'
expect huge-float        "$tmp/huge_float.ckm"   1 'too large|out of range|overflow'
expect shape-overflow    "$tmp/shape_overflow.ckm" 1 'overflow'
expect const-overflow    "$tmp/const_overflow.ckm" 1 'overflow'
expect long-line         "$tmp/long_line.ckm"    1 'error: '
expect self-recursive-layer "$tmp/recursive.ckm" 1 'error: '
expect many-errors       "$tmp/many_errors.ckm"  1 'stopping after'
expect missing-file      "$tmp/does-not-exist.ckm" 1 'cannot read'
expect directory         "$tmp"                  1 'cannot read|directory'

# Mutated samples: random byte edits of every sample. Valid or not, ckc must
# answer with 0 or 1 and never crash.
bad=0 n=0
for f in "$tmp"/mut_*.ckm; do
  [ -e "$f" ] || continue
  n=$((n + 1))
  timeout 20 "$CKC" --emit=ir "$f" >/dev/null 2>"$tmp/err"
  rc=$?
  if [ "$rc" -gt 1 ] || grep -qE 'internal error|runtime error|AddressSanitizer' "$tmp/err"; then
    bad=$((bad + 1)); echo "  mutant $(basename "$f"): exit $rc"; head -c 300 "$tmp/err"; echo
    mkdir -p build/robust-failures && cp "$f" build/robust-failures/
  fi
done
if [ "$n" -eq 0 ]; then echo "FAIL robust/mutants (no samples to mutate)"; status=1
elif [ "$bad" -eq 0 ]; then echo "PASS robust/mutants ($n mutated samples)"
else echo "FAIL robust/mutants ($bad of $n crashed; copies in build/robust-failures/)"; status=1; fi
exit $status
