#!/usr/bin/env bash
# test-suite/memplan/run.sh [--update] - the memory planner end to end.
#   golden:   `ckc --mem-report` of every sample (unfused, so that fusion work
#             does not move the planner's expectations) and of tiny_gpt with
#             --recompute=cheap, against test-suite/golden/mem/*.txt
#   goal:     planned peak / lower bound <= 1.05 for every entry graph of every
#             sample, fused (the default pipeline) and unfused
#   recompute: --recompute=cheap shrinks tiny_gpt's saved tensors, and the
#             recomputed train programs' gradients equal the plain ones bit
#             for bit (`grad` on the same weights and batch)
#   before:   with CKC_BEFORE=path/to/an/older/ckc, infer and grad outputs of
#             the programs it builds equal those of this ckc bit for bit
# Prints PASS/FAIL lines; exits nonzero if anything failed.
set -u
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
CKC="${CKC:-build/ckc}"
case $CKC in /*) ;; *) CKC="$ROOT/$CKC" ;; esac
PY="${PY:-/usr/bin/python3}"
GOLD=test-suite/golden/mem
update=0
[ "${1:-}" = "--update" ] && update=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1${2:+ ($2)}"; status=1; }
UNFUSED=""
"$CKC" --help | grep -q '^  fusion ' && UNFUSED="--disable-pass=fusion"

# ---- golden reports -------------------------------------------------------------------------
golden() { # name expected-file ckc-args...
  local name=$1 exp=$2; shift 2
  if ! "$CKC" "$@" --mem-report >"$tmp/out.txt" 2>"$tmp/err.txt"; then
    fail "$name" "ckc failed: $(head -n 1 "$tmp/err.txt")"; return
  fi
  if [ "$update" = 1 ]; then
    mkdir -p "$GOLD"; cmp -s "$tmp/out.txt" "$exp" 2>/dev/null || { cp "$tmp/out.txt" "$exp"; echo "updated $exp"; }
    pass "$name"
  elif [ ! -f "$exp" ]; then fail "$name" "no expectation $exp; run test-suite/memplan/run.sh --update"
  elif cmp -s "$exp" "$tmp/out.txt"; then pass "$name"
  else fail "$name"; diff -u "$exp" "$tmp/out.txt" | head -n 30; fi
}
for src in samples/*.ckm; do
  b=$(basename "$src" .ckm)
  # shellcheck disable=SC2086
  golden "mem-golden-$b" "$GOLD/$b.txt" "$src" $UNFUSED
done
# shellcheck disable=SC2086
golden "mem-golden-tiny_gpt-recompute" "$GOLD/tiny_gpt.recompute.txt" samples/tiny_gpt.ckm $UNFUSED --recompute=cheap
[ "$update" = 1 ] && exit $status

# ---- the goal: peak within 5% of the lower bound ---------------------------------------------
ratios() { # report -> "entry ratio" lines
  awk '/^[a-z_]+: [0-9]+ steps/ {e=$1; sub(":", "", e)} /ratio peak\/bound/ {print e, $3}' "$1"
}
for src in samples/*.ckm; do
  b=$(basename "$src" .ckm)
  for mode in fused unfused; do
    args=""; [ $mode = unfused ] && args=$UNFUSED
    # shellcheck disable=SC2086
    if ! "$CKC" "$src" $args --mem-report >"$tmp/r.txt" 2>"$tmp/err.txt"; then
      fail "mem-goal-$b-$mode" "ckc failed: $(head -n 1 "$tmp/err.txt")"; continue
    fi
    bad=$(ratios "$tmp/r.txt" | awk '$2 > 1.05 {printf "%s %s; ", $1, $2}')
    n=$(ratios "$tmp/r.txt" | wc -l)
    if [ "$n" -lt 1 ]; then fail "mem-goal-$b-$mode" "no ratio in the report"
    elif [ -n "$bad" ]; then fail "mem-goal-$b-$mode" "peak/bound above 1.05: $bad"
    else pass "mem-goal-$b-$mode"; fi
  done
done

# ---- recomputation ----------------------------------------------------------------------------
saved() { awk '/^train_step:/ {t=1} t && /saved tensors/ {print $3; exit}' "$1"; }
# shellcheck disable=SC2086
"$CKC" samples/tiny_gpt.ckm $UNFUSED --mem-report >"$tmp/plain.txt" 2>/dev/null
# shellcheck disable=SC2086
"$CKC" samples/tiny_gpt.ckm $UNFUSED --mem-report --recompute=gelu,layernorm >"$tmp/rc.txt" 2>/dev/null
s0=$(saved "$tmp/plain.txt"); s1=$(saved "$tmp/rc.txt")
if [ -n "$s0" ] && [ -n "$s1" ] && [ "$s1" -lt "$s0" ]; then pass "mem-recompute-shrinks-saved"
else fail "mem-recompute-shrinks-saved" "saved tensors $s0 -> $s1"; fi
if "$CKC" samples/mlp.ckm --mem-report --recompute=matmul >/dev/null 2>"$tmp/err.txt"; then
  fail "mem-recompute-bad-list" "accepted matmul"
elif grep -q E0016 "$tmp/err.txt"; then pass "mem-recompute-bad-list"
else fail "mem-recompute-bad-list" "no E0016"; fi

# build NAME DIR FLAGS...: a project with `grad` outputs on fixed weights and batch
build_grad() {
  local base=$1 d=$2; shift 2
  "$CKC" "test-suite/e2e/$base.ckm" -t c99 -o "$d" "$@" >/dev/null 2>"$tmp/err.txt" || return 1
  make -s -C "$d" >/dev/null 2>&1 || return 1
  local prog; prog="$d/$(sed -n 's/^\(.*\): \$(OBJS).*/\1/p' "$d/Makefile" | head -n 1)"
  "$prog" init --seed 3 --out "$d/w.safetensors" >/dev/null 2>&1 &&
    "$PY" test-suite/e2e/train_oracle.py batch "$base" "$d/bx.npy" "$d/by.npy" &&
    "$prog" grad --weights "$d/w.safetensors" --x "$d/bx.npy" --y "$d/by.npy" --out "$d/g.safetensors" >/dev/null 2>&1
}
for src in test-suite/e2e/train_*.ckm; do
  b=$(basename "$src" .ckm)
  # shellcheck disable=SC2086
  if build_grad "$b" "$tmp/$b.plain" $UNFUSED && build_grad "$b" "$tmp/$b.rc" $UNFUSED --recompute=cheap; then
    if cmp -s "$tmp/$b.plain/g.safetensors" "$tmp/$b.rc/g.safetensors"; then pass "mem-recompute-parity-$b"
    else fail "mem-recompute-parity-$b" "gradients differ"; fi
  else fail "mem-recompute-parity-$b" "build or grad failed: $(head -n 1 "$tmp/err.txt")"; fi
done

# ---- bitwise against an older ckc --------------------------------------------------------------
if [ -n "${CKC_BEFORE:-}" ]; then
  for src in samples/mlp.ckm samples/cnn.ckm samples/resmlp.ckm samples/tiny_gpt.ckm test-suite/e2e/train_*.ckm; do
    b=$(basename "$src" .ckm)
    ok=1
    for who in before after; do
      c=$CKC; [ $who = before ] && c=$CKC_BEFORE
      d="$tmp/$b.$who"
      # shellcheck disable=SC2086
      { "$c" "$src" -t c99 -o "$d" $([ $who = after ] && echo $UNFUSED) && make -s -C "$d"; } >/dev/null 2>&1 || { ok=0; break; }
      prog="$d/$(sed -n 's/^\(.*\): \$(OBJS).*/\1/p' "$d/Makefile" | head -n 1)"
      "$prog" info >"$d/info.txt"
      "$prog" init --seed 1 --out "$tmp/$b.w" >/dev/null 2>&1
      [ $who = before ] && "$PY" -c "
import re, sys, numpy as np
rng = np.random.default_rng(4321)
for l in open(sys.argv[1]):
    m = re.match(r'input (\d+): (\S+) (\w+)\[([0-9,]*)\](?: indices in \[0, (\d+)\))?', l)
    if not m: continue
    k, _, dt, dims, bound = m.groups()
    sh = tuple(int(x) for x in dims.split(',')) if dims else ()
    a = rng.standard_normal(sh).astype(np.float32) if dt == 'f32' else rng.integers(0, int(bound) if bound else 16, size=sh).astype(np.int32)
    np.save(f'{sys.argv[2]}/in{k}.npy', a)" "$d/info.txt" "$tmp" 
      ins=$(for f in "$tmp"/in*.npy; do [ -f "$f" ] && printf -- '--in %s ' "$f"; done)
      # shellcheck disable=SC2086
      "$prog" infer --weights "$tmp/$b.w" $ins --out "$d/y.npy" >/dev/null 2>&1 || ok=0
      case $b in train_*)
        "$PY" test-suite/e2e/train_oracle.py batch "$b" "$tmp/bx.npy" "$tmp/by.npy"
        "$prog" grad --weights "$tmp/$b.w" --x "$tmp/bx.npy" --y "$tmp/by.npy" --out "$d/g.st" >/dev/null 2>&1 || ok=0;;
      esac
    done
    rm -f "$tmp"/in*.npy
    if [ $ok = 0 ]; then fail "mem-bitwise-$b" "build or run failed"
    elif cmp -s "$tmp/$b.before/y.npy" "$tmp/$b.after/y.npy" &&
         { [ ! -f "$tmp/$b.before/g.st" ] || cmp -s "$tmp/$b.before/g.st" "$tmp/$b.after/g.st"; }; then
      pass "mem-bitwise-$b"
    else fail "mem-bitwise-$b" "outputs differ from CKC_BEFORE's"; fi
  done
fi
exit $status
