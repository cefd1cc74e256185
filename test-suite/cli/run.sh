#!/usr/bin/env bash
# test-suite/cli/run.sh - the ckc command line: every flag, its exit status
# and its message (docs/cli.md). Prints PASS/FAIL lines; exits nonzero if any
# check failed. CKC=path/to/ckc overrides build/ckc.
set -u
cd "$(dirname "$0")/../.."
CKC="${CKC:-build/ckc}"
case "$CKC" in /*) ;; *) CKC="$PWD/$CKC" ;; esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

pass() { echo "PASS cli/$1"; }
fail() { echo "FAIL cli/$1: $2"; fails=$((fails + 1)); }

# run NAME: runs "$CKC" with the remaining args; stdout, stderr, rc saved.
run() {
  "$CKC" "$@" >"$tmp/out" 2>"$tmp/err"
  rc=$?
}
# expect NAME RC [stdout-needle] [stderr-needle]
expect() {
  local name=$1 want=$2 outn=${3:-} errn=${4:-}
  if [ "$rc" -ne "$want" ]; then fail "$name" "exit $rc, expected $want; stderr: $(head -c 300 "$tmp/err")"; return; fi
  if [ -n "$outn" ] && ! grep -qF -- "$outn" "$tmp/out"; then fail "$name" "stdout lacks '$outn'"; return; fi
  if [ -n "$errn" ] && ! grep -qF -- "$errn" "$tmp/err"; then fail "$name" "stderr lacks '$errn': $(head -c 300 "$tmp/err")"; return; fi
  pass "$name"
}
count() { grep -c -- "$1" "$tmp/out"; }

if [ ! -x "$CKC" ]; then fail setup "no compiler at $CKC (run make)"; echo "0 passed, 1 failed"; exit 1; fi

# A model that exercises every pass: a layer call (inline), transpose(transpose)
# and x @ transpose(w) (fold), exp(x) twice (cse), an unused value (dce).
cat >"$tmp/tiny.ckm" <<'CKM'
const B = 2;
layer Lin(n) {
  param w: f32[n, n] = normal(0.0, 0.02);
  fn forward(x: f32[B, n]) -> f32[B, n] {
    return x @ transpose(w);
  }
}
model Tiny {
  l: Lin(4);
  fn forward(x: f32[B, 4]) -> f32[B, 4] {
    let unused = tanh(x);
    let e1 = exp(transpose(transpose(x)));
    let e2 = exp(x);
    return l(e1 + e2);
  }
}
CKM
t="$tmp/tiny.ckm"

# ---- informational flags --------------------------------------------------------
run --version;       expect version 0 "ckc 0.1.0"
[ "$(cat "$tmp/out")" = "ckc 0.1.0" ] && pass version-exact || fail version-exact "got '$(cat "$tmp/out")'"
run --help;          expect help 0 "usage: ckc"
for w in -o -t --emit= --dump-after= --disable-pass= "-D NAME=VALUE" "-I DIR" --max-errors= --verify \
         --list-targets --version inline fold cse dce; do
  grep -qF -- "$w" "$tmp/out" || fail help-mentions "--help does not mention '$w'"
done
pass help-mentions-all
run --list-targets;  expect list-targets 0 "c99"

# ---- usage errors: exit 2, an id, and the hint ------------------------------------
run;                                  expect no-input 2 "" "no input file [E0003]"
grep -qF "try 'ckc --help'" "$tmp/err" && pass usage-hint || fail usage-hint "no hint"
run --bogus "$t";                     expect unknown-flag 2 "" "unknown option '--bogus' [E0001]"
run -x "$t";                          expect unknown-short-flag 2 "" "[E0001]"
run "$t" -o;                          expect missing-arg-o 2 "" "missing argument to '-o' [E0002]"
run "$t" -t;                          expect missing-arg-t 2 "" "[E0002]"
run "$t" -D;                          expect missing-arg-D 2 "" "[E0002]"
run "$t" "$t" --emit=ir;              expect two-inputs 2 "" "[E0004]"
run "$t" -t nope -o "$tmp/o";         expect unknown-target 2 "" "unknown target 'nope'"
grep -qF "[E0005]" "$tmp/err" && grep -qF "c99" "$tmp/err" && pass unknown-target-lists || fail unknown-target-lists "no id or list"
run "$t" -D B --emit=ir;              expect bad-define 2 "" "[E0006]"
run "$t" -D =3 --emit=ir;             expect bad-define-name 2 "" "[E0006]"
run "$t" --dump-after=nope --emit=ir; expect unknown-dump-pass 2 "" "[E0007]"
run "$t" --disable-pass=nope --emit=ir; expect unknown-disable-pass 2 "" "[E0007]"
run "$t" --disable-pass=inline --emit=ir; expect disable-required 2 "" "pass 'inline' is required and cannot be disabled [E0008]"
run "$t" --emit=ir -o "$tmp/o";       expect emit-and-o 2 "" "[E0009]"
run "$t";                             expect neither-emit-nor-o 2 "" "[E0009]"
run "$t" --emit=asm;                  expect bad-emit 2 "" "[E0010]"
run "$t" --max-errors=0 --emit=ir;    expect bad-max-errors 2 "" "[E0011]"
run "$t" --max-errors=x --emit=ir;    expect bad-max-errors-text 2 "" "[E0011]"

# ---- input files: exit 1 ----------------------------------------------------------------
( cd "$tmp" && "$CKC" --emit=ir nope.ckm >out 2>err; echo $? >rc )
rc=$(cat "$tmp/rc")
expect missing-file 1
[ "$(cat "$tmp/err")" = "ckc: error: cannot read 'nope.ckm': No such file or directory [E0020]" ] \
  && pass missing-file-message || fail missing-file-message "got: $(cat "$tmp/err")"
mkdir -p "$tmp/dir.ckm"
run --emit=ir "$tmp/dir.ckm";         expect directory 1 "" "Is a directory [E0020]"
: >"$tmp/empty.ckm"
run --emit=ir "$tmp/empty.ckm";       expect empty-file 1 "" "[E0021]"
printf 'model M {\n  fn forward(x: f32[2]) -> f32[3] { return x; }\n}\n' >"$tmp/bad.ckm"
run --emit=ir "$tmp/bad.ckm";         expect user-error 1 "" "bad.ckm:2:"
grep -q "error:" "$tmp/err" && pass user-error-format || fail user-error-format "no 'error:'"

# ---- outputs ----------------------------------------------------------------------------------
run --emit=ir "$t";                   expect emit-ir 0 "graph forward"
grep -q "= call" "$tmp/out" && fail emit-ir-flat "a call survived inline" || pass emit-ir-flat
grep -qF "l.w" "$tmp/out" && pass emit-ir-param-name || fail emit-ir-param-name "no parameter l.w"
grep -q "f32\[2,4\]" "$tmp/out" && pass default-const || fail default-const "no f32[2,4]"
cp "$tmp/out" "$tmp/default.ir"
# cse in isolation: fusion would fold the exp into a fused loop.
run --emit=ir --disable-pass=fusion "$t"; expect emit-ir-unfused 0
[ "$(count '= exp(')" -eq 1 ] && pass cse-merged || fail cse-merged "expected one exp, got $(count '= exp(')"
[ "$(count '= tanh(')" -eq 0 ] && pass dce-removed || fail dce-removed "the unused tanh survived"
[ "$(count '= permute(')" -eq 0 ] && pass fold-removed-permutes || fail fold-removed-permutes "permute survived fold"
grep -q "transpose_b=1" "$tmp/out" && pass fold-transpose-b || fail fold-transpose-b "no matmul transpose_b=1"
run --emit=json "$t";                 expect emit-json 0
/usr/bin/python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$tmp/out" 2>/dev/null \
  && pass emit-json-valid || fail emit-json-valid "not JSON"
run --emit=dot "$t";                  expect emit-dot 0 "digraph"
run --emit=c "$t";                    expect emit-c 0
[ -s "$tmp/out" ] && pass emit-c-nonempty || fail emit-c-nonempty "empty"
cp "$tmp/out" "$tmp/c1"
run --emit=c -t c99 "$t";             expect emit-c-target 0
cmp -s "$tmp/out" "$tmp/c1" && pass emit-c-deterministic || fail emit-c-deterministic "output differs between runs"
run "$t" -t c99 -o "$tmp/proj";       expect project 0
[ -f "$tmp/proj/Makefile" ] && pass project-makefile || fail project-makefile "no $tmp/proj/Makefile"
run --emit=ir --verify "$t";          expect verify-flag 0 "graph forward"
"$CKC" --emit=ir "$t" >/dev/full 2>"$tmp/err"; rc=$?
expect write-error 1 "" "[E0022]"

# ---- -D and -I ----------------------------------------------------------------------------------
run --emit=ir -D B=3 "$t";            expect define-space 0 "f32[3,4]"
run --emit=ir -DB=5 "$t";             expect define-joined 0 "f32[5,4]"
run --emit=ir -D NOPE=1 "$t";         expect define-unknown 1
# The -D flags are recorded (canonically, in order) for run manifests.
run -DB=5 "$t" -t c99 -o "$tmp/projD"; expect define-project 0
grep -qF '.flags = "-D B=5",' "$tmp/projD/main.c" && pass define-recorded || fail define-recorded "main.c lacks .flags = \"-D B=5\""
grep -qF '.flags = "",' "$tmp/proj/main.c" && pass no-define-recorded || fail no-define-recorded "main.c lacks .flags = \"\""
mkdir -p "$tmp/lib"
printf 'layer Twice() {\n  fn forward(x: f32[2]) -> f32[2] { return x + x; }\n}\n' >"$tmp/lib/mylib.ckm"
printf 'import mylib;\nmodel M {\n  t: mylib.Twice();\n  fn forward(x: f32[2]) -> f32[2] { return t(x); }\n}\n' >"$tmp/imp.ckm"
run --emit=ir -I "$tmp/lib" "$tmp/imp.ckm"; expect import-dir 0 "graph forward"
run --emit=ir "-I$tmp/lib" "$tmp/imp.ckm";  expect import-dir-joined 0 "graph forward"
run --emit=ir "$tmp/imp.ckm";               expect import-missing 1

# ---- --dump-after and --disable-pass ----------------------------------------------------------
for p in sema inline fold cse dce; do
  run --dump-after=$p "$t" --emit=ir
  expect "dump-after-$p" 0 "// ---- IR after $p ----"
done
run --dump-after=sema "$t"
expect dump-only 0 "= call"
[ "$(grep -c '^// ---- IR after' "$tmp/out")" -eq 1 ] && pass dump-only-one || fail dump-only-one "expected exactly one dump"
run --dump-after=inline --dump-after=dce "$t"
expect dump-repeated 0 "// ---- IR after inline ----"
grep -qF "// ---- IR after dce ----" "$tmp/out" && pass dump-repeated-both || fail dump-repeated-both "no dce dump"
run --dump-after=inline "$t"
grep -q "= call" "$tmp/out" && fail dump-inline-flat "calls after inline" || pass dump-inline-flat
[ "$(count '= tanh(')" -eq 1 ] && pass dump-inline-keeps-dead || fail dump-inline-keeps-dead "tanh missing before dce"

run --emit=ir --disable-pass=fold "$t";   expect disable-fold 0
[ "$(count '= permute(')" -ge 1 ] && pass disable-fold-effect || fail disable-fold-effect "no permute without fold"
run --emit=ir --disable-pass=cse --disable-pass=fusion "$t"; expect disable-cse 0
[ "$(count '= exp(')" -eq 2 ] && pass disable-cse-effect || fail disable-cse-effect "expected two exps, got $(count '= exp(')"
run --emit=ir --disable-pass=dce "$t";    expect disable-dce 0
[ "$(count '= tanh(')" -eq 1 ] && pass disable-dce-effect || fail disable-dce-effect "tanh missing without dce"
run --emit=ir --disable-pass=fold --disable-pass=cse --disable-pass=dce "$t"; expect disable-all 0 "graph forward"
run --dump-after=cse --disable-pass=cse "$t"; expect dump-disabled 0 "// ---- IR after cse (disabled) ----"

# ---- fold computes what the runtime computes: bit-identical outputs with and without it ----
# One small model per expression, returned as x * 0.0 + EXPR (exactly EXPR), so
# a one-ulp difference in any folded op shows in the output bytes.
fold_parity() { # name expr
  local d="$tmp/fp-$1"
  mkdir -p "$d"
  cat >"$d/k.ckm" <<CKM
model K {
  fn forward(x: f32[2, 4]) -> f32[2, 4] {
    let m: f32[2, 4] = 0.7;
    let n: f32[2, 4] = -1.3;
    return x * 0.0 + $2;
  }
}
CKM
  if ! { "$CKC" "$d/k.ckm" -t c99 -o "$d/f" && "$CKC" "$d/k.ckm" -t c99 -o "$d/n" --disable-pass=fold; } 2>"$d/err" \
     || ! make -s -C "$d/f" >/dev/null 2>&1 || ! make -s -C "$d/n" >/dev/null 2>&1; then
    fail "fold-parity-$1" "could not build: $(head -c 300 "$d/err")"; return
  fi
  "$d/f/k" infer --weights "$tmp/w.safetensors" --in "$tmp/x.npy" --out "$d/yf.npy" >/dev/null 2>&1
  "$d/n/k" infer --weights "$tmp/w.safetensors" --in "$tmp/x.npy" --out "$d/yn.npy" >/dev/null 2>&1
  if [ -s "$d/yf.npy" ] && cmp -s "$d/yf.npy" "$d/yn.npy"; then pass "fold-parity-$1"
  else fail "fold-parity-$1" "'$2' differs with and without fold (or did not run)"; fi
}
if command -v make >/dev/null && /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
  /usr/bin/python3 -c 'import numpy as np,sys; np.save(sys.argv[1], np.array([[0.5,-2,3.25,1e-3],[7,-0.125,2,-4]],dtype=np.float32))' "$tmp/x.npy"
  : >"$tmp/w.safetensors"
  printf 'model K {\n  fn forward(x: f32[2, 4]) -> f32[2, 4] { return x; }\n}\n' >"$tmp/w.ckm"
  "$CKC" "$tmp/w.ckm" -t c99 -o "$tmp/wp" 2>/dev/null && make -s -C "$tmp/wp" >/dev/null 2>&1 \
    && "$tmp/wp/k" init --seed 1 --out "$tmp/w.safetensors" >/dev/null 2>&1
  fold_parity arith "m / 3.0 * n - m + n * n"
  fold_parity exp "exp(n)"
  fold_parity log "log(m)"
  fold_parity tanh "tanh(n)"
  fold_parity pow "pow(m, n)"
  fold_parity sqrt-rsqrt "sqrt(m) + rsqrt(m)"
  fold_parity sigmoid "sigmoid(n)"
  fold_parity silu-relu "silu(n) + relu(m)"
  fold_parity gelu "gelu(n)"
  fold_parity gelu-tanh "gelu(n, approximate = \"tanh\")"
  fold_parity softmax "softmax(exp(m) * n, axis = 0) + log_softmax(n, axis = 1)"
  fold_parity matmul-sum "sum(exp(m) @ transpose(n), axis = 1, keepdim = true)"
  fold_parity layernorm "layernorm(exp(m) + n)"
fi

# ---- several errors, --max-errors ---------------------------------------------------------------
printf 'model M {\n  fn forward(x: f32[2]) -> f32[2] {\n    let a = nope1;\n    let b = nope2;\n    let c = nope3;\n    return x;\n  }\n}\n' >"$tmp/many.ckm"
run --emit=ir "$tmp/many.ckm"
n_all=$(grep -c "error:" "$tmp/err")
run --emit=ir --max-errors=1 "$tmp/many.ckm"; expect max-errors 1
n_one=$(grep -c "error:" "$tmp/err")
[ "$n_one" -eq 1 ] && [ "$n_all" -gt 1 ] && pass max-errors-limits || fail max-errors-limits "errors: $n_all without limit, $n_one with --max-errors=1"

# ---- the bench script: bad arguments are refused before anything runs ---------------------------
sum_before=$(cksum bench/results.md 2>/dev/null)
for a in --shapes "3 4" 0 -5; do
  bash bench/run.sh $a >"$tmp/out" 2>"$tmp/err"; rc=$?
  expect "bench-run-rejects[$a]" 2 "" "bench/run.sh: bad arguments"
done
bash bench/run.sh --help >"$tmp/out" 2>"$tmp/err"; rc=$?
expect bench-run-help 0 "usage: bench/run.sh [REPS]"
[ "$(cksum bench/results.md 2>/dev/null)" = "$sum_before" ] && pass bench-run-bad-args-leave-results \
  || fail bench-run-bad-args-leave-results "bench/results.md changed"

echo "cli: $fails failed"
[ "$fails" -eq 0 ]
