#!/usr/bin/env bash
# test-suite/x86/run.sh - the x86-avx2 and x86-avx512 targets end to end.
# For every samples/*.ckm and test-suite/e2e/train_*.ckm and each x86 target
# the CPU can run: compile, build (-Werror, make prints only compiler lines),
# ckc-lint every emitted file it can parse (not the two ISA files and the
# driver fragment they include: clang
# needs -m flags for their intrinsics, which ckc-lint does not take), then
#   - infer parity against the c99 program on the same weights and input:
#     |x86 - c99| <= 1e-5 * max(1, max|c99|) per element. The x86 GEMM rounds
#     once per multiply-add (an fmaf chain) where c99 rounds twice, so each
#     matmul element moves by at most 2*K*2^-24*sum|a*b| (docs/kernels.md)
#     and the model output by a few ulps of its scale;
#   - infer bitwise identical for --threads 1, 2, 3 and for CK_THREADS=2;
#   - train_*: grad (loss + every gradient) against c99 (1e-4 relative to
#     each tensor's largest element, the e2e oracle's bound) and against
#     PyTorch (test-suite/e2e/train_oracle.py), bitwise identical for
#     --threads 1, 2, 3; a 3-step train run gives identical weights and
#     metrics (minus the timing fields) for --threads 1, 2, 3;
#   - --threads 0 is a usage error (exit 2);
#   - on both targets whatever the CPU (compile only, gcc), every loop of
#     tiny_gpt's, cnn's and resmlp's generated C vectorises: -fopt-info-vec
#     reports none refused for control flow.
# AVX-512 tests are skipped with a NOTE on CPUs without avx512f. Prints
# PASS/FAIL lines; exits nonzero if anything failed.
set -u
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
CKC="${CKC:-build/ckc}"
CKC_LINT="${CKC_LINT:-build/ckc-lint}"
PY="${PY:-/usr/bin/python3}"
# extra ckc flags for every compile, e.g. CKC_X86_FLAGS=--disable-pass=fusion (A/B runs)
read -r -a XFLAGS <<<"${CKC_X86_FLAGS:-}"
case $CKC in /*) ;; *) CKC="$ROOT/$CKC" ;; esac
case $CKC_LINT in /*) ;; *) CKC_LINT="$ROOT/$CKC_LINT" ;; esac
TMO="timeout 300"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1${2:+ ($2)}"; status=1; }

if [ "$(uname -m)" != x86_64 ]; then
  echo "NOTE x86: host is $(uname -m), not x86_64: the x86 targets are not tested here"
  exit 0
fi
targets=()
if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then targets+=(x86-avx2)
else echo "NOTE x86: this CPU lacks avx2/fma: x86-avx2 tests skipped"; fi
if grep -qw avx512f /proc/cpuinfo; then targets+=(x86-avx512)
else echo "NOTE x86: this CPU lacks avx512f: x86-avx512 tests skipped"; fi
[ ${#targets[@]} -gt 0 ] || exit 0

# --list-targets names both
if "$CKC" --list-targets | grep -q '^x86-avx2 ' && "$CKC" --list-targets | grep -q '^x86-avx512 '; then
  pass "x86 list-targets"
else fail "x86 list-targets"; fi

exe_of() { sed -n 's/^\(.*\): \$(OBJS).*/\1/p' "$1/Makefile" | head -n 1; }

# build DIR NAME: make must succeed and print only compiler lines with -Werror
build() {
  local d=$1 t=$2
  if ! make -C "$d" >"$tmp/make.log" 2>&1; then fail "$t make"; sed 's/^/    /' "$tmp/make.log" | head -20; return 1; fi
  local noise
  noise=$(grep -vE "^(cc|gcc|clang|\\\$\(CC\)) |^make(\[[0-9]+\])?: (Entering|Leaving) directory" "$tmp/make.log")
  if [ -n "$noise" ]; then fail "$t make quiet" "$(head -n 3 <<<"$noise")"; return 1; fi
  if ! grep -q -- "-Werror" "$tmp/make.log"; then fail "$t make quiet" "no -Werror"; return 1; fi
  pass "$t make"
}

# Random inputs for every input `PROG info` lists (as the e2e suite does).
make_inputs() { # info.txt dir -> prints the --in arguments
  "$PY" test-suite/lib/make_inputs.py "$1" "$2"
}

# close_npy REF X: |x - ref| <= 1e-5 * max(1, max|ref|); prints the worst error
close_npy() {
  "$PY" - "$1" "$2" <<'EOF'
import sys
import numpy as np
r, x = np.load(sys.argv[1]).astype(np.float64), np.load(sys.argv[2]).astype(np.float64)
assert r.shape == x.shape, (r.shape, x.shape)
scale = max(1.0, float(np.abs(r).max()) if r.size else 1.0)
err = float(np.abs(r - x).max()) if r.size else 0.0
print("max |x86 - c99| = %.3g (bound %.3g)" % (err, 1e-5 * scale))
sys.exit(0 if err <= 1e-5 * scale and np.array_equal(np.isnan(r), np.isnan(x)) else 1)
EOF
}

# close_st REF X: every tensor of two safetensors files within 1e-4 of its largest element
close_st() {
  "$PY" - "$1" "$2" <<'EOF'
import json, struct, sys
import numpy as np
def load(p):
    raw = open(p, 'rb').read()
    n = struct.unpack('<Q', raw[:8])[0]
    h = json.loads(raw[8:8 + n])
    return {k: np.frombuffer(raw[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]], np.float32)
            for k, v in h.items() if k != '__metadata__'}
r, x = load(sys.argv[1]), load(sys.argv[2])
assert r.keys() == x.keys(), (sorted(r), sorted(x))
bad = 0
for k in r:
    a, b = r[k].astype(np.float64), x[k].astype(np.float64)
    scale = max(float(np.abs(a).max()), 1e-30)
    e = float(np.abs(a - b).max()) / scale
    if e > 1e-4:
        print("  %s: relative error %.3g" % (k, e)); bad += 1
sys.exit(1 if bad else 0)
EOF
}

# same_metrics A B: metrics.jsonl equal record by record, timing fields removed
same_metrics() {
  "$PY" - "$1" "$2" <<'EOF'
import json, sys
strip = lambda p: [{k: v for k, v in json.loads(l).items() if k != 'time_s' and not k.endswith('_per_s')}
                   for l in open(p)]
a, b = strip(sys.argv[1]), strip(sys.argv[2])
sys.exit(0 if a == b and len(a) > 0 else 1)
EOF
}

# Every elementwise loop of the generated code vectorises, on both targets
# (compile only, so the CPU need not run the target): gcc's -fopt-info-vec
# names a loop it refused for control flow. The x86 math (ck_x86_math.h) is
# branch-free in C, but its compares and selects are if-converted for AVX2
# only under -fno-trapping-math (AVX-512 uses masks either way): without it
# every exp/tanh loop of an x86-avx2 program ran scalar.
if echo 'int x;' | ${CC:-cc} -fopt-info-vec -x c -c - -o "$tmp/probe.o" 2>/dev/null &&
   ! echo '__clang__' | ${CC:-cc} -E -x c - 2>/dev/null | grep -qx 1; then
  for t in x86-avx2 x86-avx512; do
    for s in tiny_gpt cnn resmlp; do
      d="$tmp/vec-$t-$s"
      if ! $TMO "$CKC" "samples/$s.ckm" -t "$t" -o "$d" >"$tmp/ckc.log" 2>&1; then
        fail "$t vectorised loops $s" "compile"; continue
      fi
      stem=$(sed -n 's/^SRCS = main\.c \([^ ]*\)\.c.*/\1/p' "$d/Makefile")
      flags=$(sed -n 's/^CFLAGS = //p' "$d/Makefile")
      # shellcheck disable=SC2086
      (cd "$d" && ${CC:-cc} $flags -fopt-info-vec-all -c "$stem.c" -o "$tmp/vec.o") >"$tmp/vec.log" 2>&1
      nvec=$(grep -c 'optimized: loop vectorized' "$tmp/vec.log")
      if grep -q 'not vectorized: control flow in loop' "$tmp/vec.log" || [ "$nvec" -lt 1 ]; then
        fail "$t vectorised loops $s" "$nvec vectorised; refused: $(grep -m 3 'control flow in loop' "$tmp/vec.log" | tr '\n' ' ')"
      else pass "$t vectorised loops $s ($nvec)"; fi
    done
  done
else echo "NOTE x86: ${CC:-cc} is not gcc (no -fopt-info-vec): the vectorisation check is skipped"; fi

ORACLE="$ROOT/test-suite/e2e/train_oracle.py"
for src in samples/*.ckm test-suite/e2e/train_*.ckm; do
  [ -f "$src" ] || continue
  base=$(basename "$src" .ckm)
  # the GPT-2-small shape is built and linted; running it is for CKC_TEST_LONG
  long_ok=1
  [ "$base" = gpt2_small ] && [ -z "${CKC_TEST_LONG:-}" ] && long_ok=0
  ref="$tmp/c99-$base"
  if ! $TMO "$CKC" "$src" "${XFLAGS[@]}" -t c99 -o "$ref" >"$tmp/ckc.log" 2>&1; then
    fail "x86-$base c99 reference compile"; sed 's/^/    /' "$tmp/ckc.log" | head -5; continue
  fi
  if [ $long_ok = 1 ]; then make -s -C "$ref" >/dev/null 2>&1 || { fail "x86-$base c99 reference make"; continue; }; fi
  rexe="$ref/$(exe_of "$ref")"
  for tg in "${targets[@]}"; do
    t="$tg-$base"
    d="$tmp/$tg-$base"
    if ! $TMO "$CKC" "$src" "${XFLAGS[@]}" -t "$tg" -o "$d" >"$tmp/ckc.log" 2>&1; then
      fail "$t compile"; sed 's/^/    /' "$tmp/ckc.log" | head -10; continue
    fi
    pass "$t compile"
    build "$d" "$t" || continue
    lint_ok=1
    for f in "$d"/*.c "$d"/*.h; do
      case $(basename "$f") in ck_gemm_avx2.c | ck_gemm_avx512.c | ck_gemm_driver.h) continue ;; esac
      if ! "$CKC_LINT" -I "$d" "$f" >"$tmp/lint.log" 2>&1; then
        lint_ok=0; fail "$t lint $(basename "$f")"; sed 's/^/    /' "$tmp/lint.log" | head -10
      fi
    done
    [ $lint_ok = 1 ] && pass "$t lint"
    [ $long_ok = 1 ] || { echo "NOTE $t: run steps only under CKC_TEST_LONG=1"; continue; }
    prog="$d/$(exe_of "$d")"

    # infer: parity with c99, bitwise across thread counts
    w="$tmp/$base.safetensors"
    $TMO "$rexe" init --seed 1 --out "$w" >/dev/null 2>&1 || { fail "$t init (c99)"; continue; }
    "$rexe" info >"$tmp/info.txt" 2>/dev/null
    mkdir -p "$tmp/in-$base"
    ins=$(make_inputs "$tmp/info.txt" "$tmp/in-$base")
    # shellcheck disable=SC2086
    $TMO "$rexe" infer --weights "$w" $ins --out "$tmp/ref.npy" >/dev/null 2>&1 || { fail "$t c99 infer"; continue; }
    ok=1
    for n in 1 2 3; do
      # shellcheck disable=SC2086
      $TMO "$prog" infer --threads $n --weights "$w" $ins --out "$tmp/x$n.npy" 2>"$tmp/err.txt" || {
        ok=0; fail "$t infer --threads $n"; sed 's/^/    /' "$tmp/err.txt" | head -5; }
    done
    [ $ok = 1 ] || continue
    if close_npy "$tmp/ref.npy" "$tmp/x1.npy" >"$tmp/cmp.log" 2>&1; then pass "$t infer parity vs c99"
    else fail "$t infer parity vs c99" "$(tail -n 1 "$tmp/cmp.log")"; fi
    # shellcheck disable=SC2086
    if cmp -s "$tmp/x1.npy" "$tmp/x2.npy" && cmp -s "$tmp/x1.npy" "$tmp/x3.npy" &&
       CK_THREADS=2 $TMO "$prog" infer --weights "$w" $ins --out "$tmp/xe.npy" && cmp -s "$tmp/x1.npy" "$tmp/xe.npy"
    then pass "$t infer bitwise threads 1,2,3,CK_THREADS=2"
    else fail "$t infer bitwise threads" "outputs differ between thread counts"; fi
    $TMO "$prog" info --threads 0 >/dev/null 2>&1
    rc=$?
    if [ $rc -eq 2 ]; then pass "$t --threads 0 usage error"; else fail "$t --threads 0 usage error" "exit $rc"; fi

    # training programs: grad parity (c99, PyTorch), bitwise grads and train runs
    case $base in train_*) ;; *) continue ;; esac
    wd="$tmp/$t.train"
    mkdir -p "$wd"
    "$PY" "$ORACLE" data "$base" "$wd" 2>/dev/null || { fail "$t train data"; continue; }
    "$PY" "$ORACLE" batch "$base" "$wd/bx.npy" "$wd/by.npy"
    $TMO "$rexe" init --seed 3 --out "$wd/w.safetensors" >/dev/null
    $TMO "$rexe" grad --weights "$wd/w.safetensors" --x "$wd/bx.npy" --y "$wd/by.npy" --out "$wd/gref.safetensors" \
      >/dev/null 2>&1 || { fail "$t c99 grad"; continue; }
    ok=1
    for n in 1 2 3; do
      $TMO "$prog" grad --threads $n --weights "$wd/w.safetensors" --x "$wd/bx.npy" --y "$wd/by.npy" \
        --out "$wd/g$n.safetensors" 2>"$tmp/err.txt" || { ok=0; fail "$t grad --threads $n"; sed 's/^/    /' "$tmp/err.txt" | head -5; }
    done
    [ $ok = 1 ] || continue
    if close_st "$wd/gref.safetensors" "$wd/g1.safetensors" >"$tmp/cmp.log" 2>&1; then pass "$t grad parity vs c99"
    else fail "$t grad parity vs c99"; sed 's/^/    /' "$tmp/cmp.log" | head -5; fi
    if "$PY" "$ORACLE" grad "$base" "$wd/w.safetensors" "$wd/g2.safetensors" "$wd/bx.npy" "$wd/by.npy" \
         >"$tmp/oracle.log" 2>&1; then pass "$t grad parity vs PyTorch"
    else fail "$t grad parity vs PyTorch"; sed 's/^/    /' "$tmp/oracle.log" | tail -5; fi
    if cmp -s "$wd/g1.safetensors" "$wd/g2.safetensors" && cmp -s "$wd/g1.safetensors" "$wd/g3.safetensors"; then
      pass "$t grad bitwise threads 1,2,3"
    else fail "$t grad bitwise threads" "gradients differ between thread counts"; fi
    ok=1
    for n in 1 2 3; do
      (cd "$wd" && $TMO "$prog" train --threads $n --steps 3 --run-dir "run$n" --quiet) >"$tmp/train.log" 2>&1 || {
        ok=0; fail "$t train --threads $n"; sed 's/^/    /' "$tmp/train.log" | tail -5; }
    done
    [ $ok = 1 ] || continue
    if cmp -s "$wd/run1/weights.safetensors" "$wd/run2/weights.safetensors" &&
       cmp -s "$wd/run1/weights.safetensors" "$wd/run3/weights.safetensors" &&
       same_metrics "$wd/run1/metrics.jsonl" "$wd/run2/metrics.jsonl" &&
       same_metrics "$wd/run1/metrics.jsonl" "$wd/run3/metrics.jsonl"; then
      pass "$t train bitwise threads 1,2,3"
    else fail "$t train bitwise threads" "weights or metrics differ between thread counts"; fi
  done
done

# ---- pooled attention / layernorm / sum (rt-min/x86/ck_x86_kernels.h) ---------------------
# lower_x86_kernels swaps the reference attention and layernorm kernels (forward
# and backward) and ck_sum_f32 for their pooled twins, which compute every element with the
# reference's operations in the reference's order. Checked on tiny_gpt (which
# has no train_* twin above): the emitted code calls the twins (so the parity
# tests above exercise them), and grad (loss + every gradient) matches the c99
# program within the e2e bound (1e-4 of each tensor's largest element; only the
# GEMM rounds differently) and is bitwise identical for --threads 1, 2, 3.
if [ -f samples/tiny_gpt.ckm ]; then
  tg=${targets[${#targets[@]}-1]}
  t="$tg-tiny_gpt pooled kernels"
  pd="$tmp/pooled"
  mkdir -p "$pd"
  if $TMO "$CKC" samples/tiny_gpt.ckm "${XFLAGS[@]}" -t "$tg" -o "$pd/x" >/dev/null 2>&1 &&
     $TMO "$CKC" samples/tiny_gpt.ckm "${XFLAGS[@]}" -t c99 -o "$pd/c" >/dev/null 2>&1 &&
     make -s -C "$pd/x" >/dev/null 2>&1 && make -s -C "$pd/c" >/dev/null 2>&1; then
    src_c=$(ls "$pd/x"/tinygpt.c 2>/dev/null)
    ok=1
    # attention: the heads kernels, which read q/k/v in place from qkv (lower_x86_heads)
    # layernorm backward: the fused call that sets dx/dw/db (lower_x86_fold_norm_bwd)
    for k in ck_x86_attention_heads_f32 ck_x86_attention_heads_backward_f32 ck_x86_layernorm_f32 ck_x86_layernorm_backward_set_f32 \
             ck_x86_sum_f32; do
      grep -q "$k(pool," "$src_c" || { ok=0; fail "$t" "no $k call in the emitted code"; }
    done
    if grep -qE "(^|[^_a-z0-9])ck_(attention|attention_backward|layernorm|layernorm_backward|sum)_f32\(" "$src_c"; then
      ok=0; fail "$t" "a reference attention/layernorm/sum call is left in the emitted code"
    fi
    [ $ok = 1 ] && pass "$t emitted"
    # a fused call's comment names every IR node it computes (LowerStep.nodes):
    # the layernorm backward set call also computes the bias gradient's sum
    if "$PY" - "$src_c" <<'EOF2'; then pass "$t fused call comments name every node"
import sys
blocks = open(sys.argv[1]).read().split("\n\n")
calls = [b for b in blocks if "ck_x86_layernorm_backward_set_f32(pool," in b]
bad = [b for b in calls if not ("= layernorm_bwd" in b and "= sum(" in b)]
sys.exit(0 if calls and not bad else 1)
EOF2
    else fail "$t fused call comments" "a ck_x86_layernorm_backward_set_f32 call's comment lacks its layernorm_bwd or sum node"; fi
    px="$pd/x/$(exe_of "$pd/x")"
    pc="$pd/c/$(exe_of "$pd/c")"
    "$PY" - "$pd" <<'EOF2'
import sys
import numpy as np
rng = np.random.default_rng(7)
t = rng.integers(0, 256, size=(8, 65)).astype(np.int32)
np.save(sys.argv[1] + '/bx.npy', t[:, :-1].copy())
np.save(sys.argv[1] + '/by.npy', t[:, 1:].copy())
EOF2
    $TMO "$pc" init --seed 5 --out "$pd/w.safetensors" >/dev/null 2>&1
    if $TMO "$pc" grad --weights "$pd/w.safetensors" --x "$pd/bx.npy" --y "$pd/by.npy" --out "$pd/gref.safetensors" \
         >/dev/null 2>&1; then
      ok=1
      for n in 1 2 3; do
        $TMO "$px" grad --threads $n --weights "$pd/w.safetensors" --x "$pd/bx.npy" --y "$pd/by.npy" \
          --out "$pd/g$n.safetensors" >/dev/null 2>"$tmp/err.txt" || { ok=0; fail "$t grad --threads $n"; }
      done
      if [ $ok = 1 ]; then
        if close_st "$pd/gref.safetensors" "$pd/g1.safetensors" >"$tmp/cmp.log" 2>&1; then pass "$t grad parity vs c99"
        else fail "$t grad parity vs c99"; sed 's/^/    /' "$tmp/cmp.log" | head -5; fi
        if cmp -s "$pd/g1.safetensors" "$pd/g2.safetensors" && cmp -s "$pd/g1.safetensors" "$pd/g3.safetensors"; then
          pass "$t grad bitwise threads 1,2,3"
        else fail "$t grad bitwise threads" "gradients differ between thread counts"; fi
      fi
    else fail "$t c99 grad"; fi
  else fail "$t compile/make"; fi
fi
exit $status
