#!/usr/bin/env bash
# test-suite/e2e/run.sh - end to end: every samples/*.ckm and test-suite/e2e/*.ckm
# is compiled with `ckc -t c99`, the project is built with make (-Werror; make
# must print nothing but compiler lines), every emitted .c/.h is checked with
# ckc-lint (libclang, -pedantic), then the program runs `info`, `init`,
# `infer` on a random input; emission is byte-stable across cwds; the
# program's error paths (missing/truncated weights, wrong-shape input,
# out-of-range token id) exit 1 with a message naming the file, never crash.
# Programs with a train block (test-suite/e2e/train_*.ckm) also train for 5
# steps and have their gradients checked against PyTorch.
# Prints PASS/FAIL lines; exits nonzero if anything failed.
set -u
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
CKC="${CKC:-build/ckc}"
CKC_LINT="${CKC_LINT:-build/ckc-lint}"
PY="${PY:-/usr/bin/python3}"
case $CKC in /*) ;; *) CKC="$ROOT/$CKC" ;; esac
case $CKC_LINT in /*) ;; *) CKC_LINT="$ROOT/$CKC_LINT" ;; esac
TMO="timeout 120"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1${2:+ ($2)}"; status=1; }

# An error path: must exit 1 (not a signal, not a timeout) and say something
# on stderr that names $want. name want command...
expect_err() {
  local name=$1 want=$2; shift 2
  local err="$tmp/err.txt"
  $TMO "$@" >/dev/null 2>"$err"
  local rc=$?
  if [ "$rc" -ge 124 ]; then fail "$name" "exit $rc: crash or timeout"; sed 's/^/    /' "$err" | head -5
  elif [ "$rc" -ne 1 ]; then fail "$name" "exit $rc, expected 1"; sed 's/^/    /' "$err" | head -5
  elif ! grep -qF -- "$want" "$err"; then fail "$name" "message does not name '$want'"; sed 's/^/    /' "$err" | head -5
  else pass "$name"; fi
}

# Writes a random .npy for every input listed by `PROG info`:
#   input 0: idx i32[8,64] indices in [0, 256)
make_inputs() { # info.txt dir -> prints the --in arguments
  "$PY" test-suite/lib/make_inputs.py "$1" "$2"
}

for src in samples/*.ckm test-suite/e2e/*.ckm; do
  [ -f "$src" ] || continue
  base=$(basename "$src" .ckm)
  t="e2e-$base"
  d="$tmp/$base"
  if ! $TMO "$CKC" "$src" -t c99 -o "$d" >"$tmp/ckc.log" 2>&1; then
    fail "$t compile"; sed 's/^/    /' "$tmp/ckc.log" | head -10; continue
  fi
  pass "$t compile"
  mk=$(sed -n 's/^\(.*\): \$(OBJS).*/\1/p' "$d/Makefile" | head -n 1)
  if [ -z "$mk" ]; then fail "$t makefile" "no executable rule"; continue; fi

  # build: only compiler lines (and GNU make's -C directory notes)
  if ! make -C "$d" >"$tmp/make.log" 2>&1; then
    fail "$t make"; sed 's/^/    /' "$tmp/make.log" | head -20; continue
  fi
  noise=$(grep -vE "^(cc|gcc|clang|\\\$\(CC\)) |^make(\[[0-9]+\])?: (Entering|Leaving) directory" "$tmp/make.log")
  if [ -n "$noise" ]; then fail "$t make quiet" "$(head -n 3 <<<"$noise")"
  elif ! grep -q -- "-Werror" "$tmp/make.log"; then fail "$t make quiet" "no -Werror on the compiler line"
  else pass "$t make"; fi
  prog="$d/$mk"

  # the Makefile builds one object per source: a second make compiles
  # nothing, touching one source recompiles that object alone and relinks
  if [ "$base" = mlp ]; then
    sleep 1; touch "$d/main.c"
    if make -C "$d" >"$tmp/make2.log" 2>&1 &&
       [ "$(grep -cE '^(cc|gcc|clang) .* -c main\.c$' "$tmp/make2.log")" = 1 ] &&
       [ "$(grep -cE '^(cc|gcc|clang) .* -c ' "$tmp/make2.log")" = 1 ] &&
       grep -qE "^(cc|gcc|clang) .* -o $mk " "$tmp/make2.log" &&
       make -C "$d" >"$tmp/make3.log" 2>&1 && ! grep -qE '^(cc|gcc|clang) ' "$tmp/make3.log"; then
      pass "$t make incremental"
    else fail "$t make incremental"; sed 's/^/    /' "$tmp/make2.log" "$tmp/make3.log" | head -10; fi
  fi

  # libclang: strict C99, -pedantic
  lint_ok=1
  for f in "$d"/*.c "$d"/*.h; do
    if ! "$CKC_LINT" -I "$d" "$f" >"$tmp/lint.log" 2>&1; then
      lint_ok=0; fail "$t lint $(basename "$f")"; sed 's/^/    /' "$tmp/lint.log" | head -10
    fi
  done
  [ $lint_ok = 1 ] && pass "$t lint"
  # The GPT-2-small shape (124M parameters, 500 MB of weights) is compiled,
  # built and linted here; running it is for `make test-long` and `make bench`.
  if [ "$base" = gpt2_small ] && [ -z "${CKC_TEST_LONG:-}" ]; then
    echo "NOTE $t: run steps only under CKC_TEST_LONG=1 (make test-long)"; continue
  fi

  # info
  if $TMO "$prog" info >"$tmp/info.txt" 2>"$tmp/err.txt" && grep -q '^parameters: ' "$tmp/info.txt" &&
     grep -q '^memory: params ' "$tmp/info.txt"; then pass "$t info"
  else fail "$t info"; sed 's/^/    /' "$tmp/err.txt" | head -5; continue; fi

  # init: deterministic for a seed, different for another
  w="$tmp/$base.safetensors"
  if $TMO "$prog" init --seed 1 --out "$w" 2>"$tmp/err.txt" && [ -s "$w" ] &&
     $TMO "$prog" init --seed 1 --out "$w.again" && cmp -s "$w" "$w.again"; then pass "$t init"
  else fail "$t init"; sed 's/^/    /' "$tmp/err.txt" | head -5; continue; fi
  if ! grep -qE ' init (normal|uniform|xavier_uniform|kaiming_uniform)$' "$tmp/info.txt"; then :
  elif $TMO "$prog" init --seed 2 --out "$w.seed2" && ! cmp -s "$w" "$w.seed2"; then pass "$t init seed"
  else fail "$t init seed" "seeds 1 and 2 give the same weights"; fi

  # infer on a random input: output shape as `info` says, all finite
  mkdir -p "$tmp/$base.in"
  ins=$(make_inputs "$tmp/info.txt" "$tmp/$base.in")
  out="$tmp/$base.out.npy"
  # shellcheck disable=SC2086
  if $TMO "$prog" infer --weights "$w" $ins --out "$out" 2>"$tmp/err.txt"; then
    if "$PY" - "$out" "$tmp/info.txt" <<'EOF'
import re, sys
import numpy as np
y = np.load(sys.argv[1])
m = [re.match(r'output: (\w+)\[([0-9,]*)\]', l) for l in open(sys.argv[2])]
m = [x for x in m if x][0]
shape = tuple(int(v) for v in m.group(2).split(',')) if m.group(2) else ()
assert y.shape == shape, (y.shape, shape)
if y.dtype.kind == 'f':
    assert np.isfinite(y).all(), 'non-finite output'
    assert np.abs(y).max() > 0, 'all-zero output'
EOF
    then pass "$t infer"; else fail "$t infer" "bad output"; fi
  else fail "$t infer"; sed 's/^/    /' "$tmp/err.txt" | head -5; fi

  # byte-stable: same input from another cwd, relative -o
  mkdir -p "$tmp/cwd2"
  if (cd "$tmp/cwd2" && $TMO "$CKC" "$ROOT/$src" -t c99 -o again >/dev/null 2>&1) &&
     diff -r -q -x "$mk" -x '*.o' "$d" "$tmp/cwd2/again" >"$tmp/diff.log" 2>&1; then pass "$t byte-stable"
  else fail "$t byte-stable"; sed 's/^/    /' "$tmp/diff.log" | head -5; fi
  rm -rf "$tmp/cwd2"

  # --emit=c prints exactly <model>.c
  stem=$(sed -n 's/^SRCS = main\.c \([^ ]*\)\.c.*/\1/p' "$d/Makefile")
  if $TMO "$CKC" "$src" -t c99 --emit=c >"$tmp/emit.c" 2>/dev/null && cmp -s "$tmp/emit.c" "$d/$stem.c"; then
    pass "$t emit=c"
  else fail "$t emit=c" "differs from $stem.c"; fi

  # error paths of the generated program
  first_in=$(awk '{print $2; exit}' <<<"$ins")
  rest_in=$(awk '{for (i = 3; i <= NF; i++) printf "%s ", $i}' <<<"$ins")
  # shellcheck disable=SC2086
  expect_err "$t missing weights" "missing.safetensors" \
    "$prog" infer --weights "$tmp/missing.safetensors" $ins --out "$tmp/o.npy"
  head -c $(( $(wc -c <"$w") / 2 )) "$w" >"$tmp/trunc.safetensors"
  # shellcheck disable=SC2086
  expect_err "$t truncated weights" "trunc.safetensors" \
    "$prog" infer --weights "$tmp/trunc.safetensors" $ins --out "$tmp/o.npy"
  if [ -n "$first_in" ]; then
    "$PY" -c "
import sys, numpy as np
a = np.load(sys.argv[1]); np.save(sys.argv[2], np.zeros(a.shape + (2,), a.dtype))" "$first_in" "$tmp/wrongshape.npy"
    # shellcheck disable=SC2086
    expect_err "$t wrong-shape input" "wrongshape.npy" \
      "$prog" infer --weights "$w" --in "$tmp/wrongshape.npy" $rest_in --out "$tmp/o.npy"
  fi
  if grep -q 'indices in \[0, ' "$tmp/info.txt"; then
    k=$(grep -m1 'indices in \[0, ' "$tmp/info.txt" | sed -E 's/^input ([0-9]+):.*/\1/')
    bound=$(grep -m1 'indices in \[0, ' "$tmp/info.txt" | sed -E 's/.*indices in \[0, ([0-9]+)\).*/\1/')
    bad="$tmp/badidx.npy"
    "$PY" -c "
import sys, numpy as np
a = np.load(sys.argv[1]); a.flat[a.size // 2] = int(sys.argv[3]); np.save(sys.argv[2], a)" \
      "$tmp/$base.in/in$k.npy" "$bad" "$bound"
    badins=$(sed "s|$tmp/$base.in/in$k.npy|$bad|" <<<"$ins")
    # shellcheck disable=SC2086
    expect_err "$t token out of range" "outside [0, $bound)" \
      "$prog" infer --weights "$w" $badins --out "$tmp/o.npy"
  fi
  $TMO "$prog" bogus >/dev/null 2>&1
  rc=$?
  if [ "$rc" -eq 2 ]; then pass "$t usage error"; else fail "$t usage error" "exit $rc, expected 2"; fi
done

# Training programs (test-suite/e2e/train_*.ckm, built above): `train --steps 5`
# writes a run directory (manifest, 5 metric records, checkpoints, weights) and
# is reproducible bit for bit; the gradients of train_step (`grad`) match
# PyTorch (train_oracle.py, float64); a bad class target is an error (exit 1).
ORACLE="$ROOT/test-suite/e2e/train_oracle.py"
for src in test-suite/e2e/train_*.ckm; do
  [ -f "$src" ] || continue
  base=$(basename "$src" .ckm)
  t="e2e-$base"
  d="$tmp/$base"
  mk=$(sed -n 's/^\(.*\): \$(OBJS).*/\1/p' "$d/Makefile" 2>/dev/null | head -n 1)
  if [ -z "$mk" ] || [ ! -x "$d/$mk" ]; then fail "$t train" "project not built"; continue; fi
  prog="$d/$mk"
  w="$tmp/$base.train"
  mkdir -p "$w"
  if ! "$PY" "$ORACLE" data "$base" "$w" 2>"$tmp/err.txt"; then
    fail "$t train data"; sed 's/^/    /' "$tmp/err.txt" | head -5; continue
  fi
  if (cd "$w" && $TMO "$prog" train --steps 5 --run-dir run1 --quiet) >"$tmp/train.log" 2>&1 &&
     [ -s "$w/run1/manifest.json" ] && [ -s "$w/run1/weights.safetensors" ] &&
     ls "$w/run1/checkpoints/"* >/dev/null 2>&1 &&
     "$PY" -c "
import json, math, sys
recs = [r for r in map(json.loads, open(sys.argv[1])) if 'loss' in r]  # eval records have eval_loss
assert [r['step'] for r in recs] == [1, 2, 3, 4, 5], recs
assert all(math.isfinite(r['loss']) for r in recs), recs
json.load(open(sys.argv[2]))" "$w/run1/metrics.jsonl" "$w/run1/manifest.json" 2>>"$tmp/train.log"; then
    pass "$t train"
  else fail "$t train"; sed 's/^/    /' "$tmp/train.log" | tail -8; continue; fi
  if (cd "$w" && $TMO "$prog" train --steps 5 --run-dir run2 --quiet) >/dev/null 2>&1 &&
     cmp -s "$w/run1/weights.safetensors" "$w/run2/weights.safetensors"; then pass "$t train reproducible"
  else fail "$t train reproducible" "two runs with the same seed differ"; fi
  "$PY" "$ORACLE" batch "$base" "$w/bx.npy" "$w/by.npy"
  if $TMO "$prog" init --seed 3 --out "$w/w.safetensors" &&
     $TMO "$prog" grad --weights "$w/w.safetensors" --x "$w/bx.npy" --y "$w/by.npy" --out "$w/g.safetensors" \
       2>"$tmp/err.txt" &&
     "$PY" "$ORACLE" grad "$base" "$w/w.safetensors" "$w/g.safetensors" "$w/bx.npy" "$w/by.npy" >"$tmp/oracle.log" 2>&1; then
    pass "$t grad parity"
  else fail "$t grad parity"; cat "$tmp/err.txt" "$tmp/oracle.log" 2>/dev/null | sed 's/^/    /' | tail -8; fi
  if grep -q 'cross_entropy' "$src"; then
    "$PY" "$ORACLE" batch "$base" "$w/bx.npy" "$w/bady.npy" bad
    expect_err "$t bad target" "train_step" \
      "$prog" grad --weights "$w/w.safetensors" --x "$w/bx.npy" --y "$w/bady.npy" --out "$w/g2.safetensors"
  fi
done

# Lowering of hand-built IR (ops the samples do not use), against PyTorch.
if [ -f build/libckc.a ] &&
   ${CC:-cc} -std=c11 -O1 -I. -Ibuild -Irt-min test-suite/e2e/hand_ir.c build/libckc.a \
     $(pkg-config --libs libcjson 2>/dev/null || echo -lcjson) -lm -o "$tmp/hand_ir" 2>"$tmp/cc.log"; then
  for gname in gpt misc cnn bmm; do
    t="e2e-hand-$gname"
    d="$tmp/hand-$gname"
    if ! "$tmp/hand_ir" "$gname" "$d" 2>"$tmp/err.txt" || ! make -s -C "$d" >"$tmp/make.log" 2>&1; then
      fail "$t build"; cat "$tmp/err.txt" "$tmp/make.log" | sed 's/^/    /' | head -10; continue
    fi
    prog=$(sed -n 's/^\(.*\): \$(OBJS).*/\1/p' "$d/Makefile" | head -n 1)
    lint_ok=1
    for f in "$d"/*.c "$d"/*.h; do "$CKC_LINT" -I "$d" "$f" >/dev/null 2>&1 || lint_ok=0; done
    [ $lint_ok = 1 ] && pass "$t lint" || fail "$t lint"
    "$d/$prog" info >"$tmp/info.txt"
    mkdir -p "$d.in"
    ins=$(make_inputs "$tmp/info.txt" "$d.in")
    # shellcheck disable=SC2086
    if $TMO "$d/$prog" init --seed 7 --out "$d.w" && $TMO "$d/$prog" infer --weights "$d.w" $ins --out "$d.out.npy" &&
       "$PY" test-suite/e2e/hand_ir_oracle.py "$gname" "$d.w" "$d.out.npy" $(sed 's/--in //g' <<<"$ins") >"$tmp/oracle.log" 2>&1; then
      pass "$t parity"
    else fail "$t parity"; sed 's/^/    /' "$tmp/oracle.log" | tail -5; fi
  done
else
  fail "e2e-hand build" "cannot compile test-suite/e2e/hand_ir.c"; sed 's/^/    /' "$tmp/cc.log" 2>/dev/null | head -5
fi

# The compiler's own output errors (E09xx): an unwritable project directory.
if [ -f samples/mlp.ckm ]; then
  touch "$tmp/afile"
  $TMO "$CKC" samples/mlp.ckm -t c99 -o "$tmp/afile/sub" >/dev/null 2>"$tmp/err.txt"
  rc=$?
  if [ "$rc" -eq 1 ] && grep -q 'E090' "$tmp/err.txt" && grep -qF "$tmp/afile" "$tmp/err.txt"; then
    pass "e2e unwritable output dir"
  else fail "e2e unwritable output dir" "exit $rc"; sed 's/^/    /' "$tmp/err.txt" | head -3; fi
fi

exit $status
