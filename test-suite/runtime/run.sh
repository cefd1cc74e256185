#!/usr/bin/env bash
# test-suite/runtime/run.sh - the generic runtime driver (rt-min/ck_main.c)
# as a program: builds the hand-written fake models (fake_main.c) the way a
# generated project is built, then drives the CLI: determinism of two runs,
# SIGKILL in the middle of a checkpoint write (test hook
# CK_TEST_CRASH_IN_CHECKPOINT=N: the N-th checkpoint write of the process
# stops with SIGKILL after half its temp file) and --resume, a corrupt newest
# checkpoint, sampling, eval, data errors, NaN stop, progress output and
# usage errors; then ckpt_stream.c: the streaming checkpoint writer against a
# reference file, write errors (/dev/full, a file size limit) and peak RSS.
# Prints PASS/FAIL lines; exit status 1 if any failed.
set -u
cd "$(dirname "$0")/../.."
ROOT=$PWD
CC=${CC:-cc}
PY=${PY:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
nfail=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1${2:+: $2}"; nfail=$((nfail + 1)); }

RT="rt-min/ck_main.c rt-min/ck_data.c rt-min/ck_ckpt.c rt-min/ck_run.c rt-min/ck_io.c rt-min/ck_rng.c
    rt-min/ck_optim.c rt-min/ck_grad.c rt-min/ck_kernels.c rt-min/ck_mem.c"
FLAGS="-std=c99 -pedantic -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -O2"

# ---- build: gcc and clang-14, warning-free --------------------------------------------------
for cc in "$CC" clang-14; do
  command -v "$cc" >/dev/null 2>&1 || continue
  # shellcheck disable=SC2086
  if $cc $FLAGS -I"$ROOT" test-suite/runtime/fake_main.c $RT -lm -o "$tmp/fakemlp-$cc" 2>"$tmp/cc.log" &&
     $cc $FLAGS -I"$ROOT" -DFAKE_LM test-suite/runtime/fake_main.c $RT -lm -o "$tmp/fakelm-$cc" 2>>"$tmp/cc.log"
  then pass "runtime build $cc"
  else fail "runtime build $cc"; sed 's/^/    /' "$tmp/cc.log" | head -20; fi
done
LM="$tmp/fakelm-$CC"
MLP="$tmp/fakemlp-$CC"
[ -x "$LM" ] && [ -x "$MLP" ] || { echo "FAIL runtime: no fake model binaries"; exit 1; }

sans_timing() { sed -E 's/,"(tokens_per_s|samples_per_s|time_s)":[-0-9.e+]+//g' "$1"; }
same_run() { # dirA dirB
  cmp -s "$1/weights.safetensors" "$2/weights.safetensors" &&
    diff -q <(sans_timing "$1/metrics.jsonl") <(sans_timing "$2/metrics.jsonl") >/dev/null
}

# ---- language model on a token file -----------------------------------------------------------
mkdir -p "$tmp/lm"
cd "$tmp/lm" || exit 1
awk 'BEGIN { srand(1); s = "abcdefgh \n"; for (i = 0; i < 3000; i++) printf "%s", substr(s, int(rand() * 10) + 1, 1) }' >tokens.u8

if "$LM" info >info.txt && grep -q '^parameters: 1 tensors, 16384 scalars' info.txt &&
   grep -q '^input 0: idx i32\[2,8\] indices in \[0, 128)' info.txt && grep -q '^train: adamw' info.txt
then pass "runtime info"; else fail "runtime info"; sed 's/^/    /' info.txt; fi

if "$LM" init --seed 4 --out w1.safetensors && "$LM" init --seed 4 --out w2.safetensors &&
   cmp -s w1.safetensors w2.safetensors && "$LM" init --seed 5 --out w3.safetensors &&
   ! cmp -s w1.safetensors w3.safetensors
then pass "runtime init deterministic"; else fail "runtime init deterministic"; fi

"$LM" train --run-dir A >a.out 2>a.err
rc=$?
if [ $rc -eq 0 ] && [ -s A/weights.safetensors ] && [ -s A/manifest.json ] && [ -s A/loss.svg ] &&
   [ "$(grep -c '"loss"' A/metrics.jsonl)" -eq 24 ] && [ -s A/checkpoints/ckpt-00000024.ckpt ]
then pass "runtime train writes the run directory"
else fail "runtime train writes the run directory" "exit $rc"; sed 's/^/    /' a.err | head -5; fi

# progress when stdout is not a terminal: plain lines every log_every steps, no '\r'
if grep -q '^step 5/24  loss ' a.out && grep -q '^step 24/24 ' a.out && ! grep -q $'\r' a.out
then pass "runtime progress plain lines"; else fail "runtime progress plain lines"; head -3 a.out; fi
# on a terminal: one line rewritten with '\r'
if command -v script >/dev/null 2>&1; then
  script -qec "'$LM' train --run-dir T --steps 3" /dev/null >tty.out 2>&1
  if grep -q $'\rstep 2/3' tty.out; then pass "runtime progress live line on a tty"
  else fail "runtime progress live line on a tty"; fi
fi

"$LM" train --run-dir B --quiet >/dev/null 2>&1
if same_run A B && cmp -s A/checkpoints/ckpt-00000012.ckpt B/checkpoints/ckpt-00000012.ckpt
then pass "runtime two runs bitwise identical"; else fail "runtime two runs bitwise identical"; fi

# SIGKILL during the 2nd checkpoint write (step 12): resume from step 6
CK_TEST_CRASH_IN_CHECKPOINT=2 "$LM" train --run-dir C --quiet >/dev/null 2>&1
rc=$?
if [ $rc -eq 137 ] && [ -f C/checkpoints/ckpt-00000012.ckpt.tmp ] && [ ! -e C/checkpoints/ckpt-00000012.ckpt ] &&
   [ -s C/checkpoints/ckpt-00000006.ckpt ]
then pass "runtime SIGKILL during a checkpoint write"
else fail "runtime SIGKILL during a checkpoint write" "exit $rc"; ls C/checkpoints; fi
"$LM" train --run-dir C --resume >c.out 2>c.err
rc=$?
if [ $rc -eq 0 ] && grep -q 'resuming from C/checkpoints/ckpt-00000006.ckpt (step 6)' c.out && same_run A C
then pass "runtime resume after SIGKILL is bitwise identical"
else fail "runtime resume after SIGKILL is bitwise identical" "exit $rc"; cat c.err | head -5; fi

# a corrupt newest checkpoint: skipped with a warning naming it
cp -r A D
rm D/weights.safetensors
printf 'X' | dd of=D/checkpoints/ckpt-00000024.ckpt bs=1 seek=200 conv=notrunc 2>/dev/null
truncate -s 1000 D/checkpoints/ckpt-00000018.ckpt
"$LM" train --run-dir D --resume >d.out 2>d.err
rc=$?
if [ $rc -eq 0 ] && grep -q 'skipping D/checkpoints/ckpt-00000024.ckpt: checksum mismatch' d.err &&
   grep -q 'skipping D/checkpoints/ckpt-00000018.ckpt: truncated' d.err &&
   grep -q 'resuming from D/checkpoints/ckpt-00000012.ckpt' d.out && same_run A D
then pass "runtime corrupt checkpoints skipped, resume identical"
else fail "runtime corrupt checkpoints skipped, resume identical" "exit $rc"; sed 's/^/    /' d.err | head -5; fi

"$LM" train --run-dir A >/dev/null 2>e.err
rc=$?
if [ $rc -eq 1 ] && grep -q 'already holds checkpoints: pass --resume' e.err
then pass "runtime refuses to overwrite a run"; else fail "runtime refuses to overwrite a run" "exit $rc"; fi

# overriding flags are honoured and recorded
"$LM" train --run-dir F --steps 7 --lr 0.01 --seed 9 --checkpoint-every 3 --eval-every 2 --quiet >/dev/null 2>&1
if [ "$(grep -c '"loss"' F/metrics.jsonl)" -eq 7 ] && [ "$(grep -c '"eval_loss"' F/metrics.jsonl)" -eq 4 ] &&
   ls F/checkpoints | tr '\n' ' ' | grep -q '^ckpt-00000003.ckpt ckpt-00000006.ckpt ckpt-00000007.ckpt $' &&
   grep -q '"seed": 9' F/manifest.json && grep -q '"lr": 0.01' F/manifest.json
then pass "runtime flags override the train block"
else fail "runtime flags override the train block"; ls F/checkpoints; fi

# sampling: seeded and reproducible
"$LM" sample --weights A/weights.safetensors --prompt "abc" --tokens 50 --seed 3 >s1.txt 2>/dev/null
"$LM" sample --weights A/weights.safetensors --prompt "abc" --tokens 50 --seed 3 >s2.txt 2>/dev/null
"$LM" sample --weights A/weights.safetensors --prompt "abc" --tokens 50 --seed 4 >s3.txt 2>/dev/null
if [ "$(head -c 3 s1.txt)" = abc ] && [ "$(wc -c <s1.txt)" -eq 54 ] && cmp -s s1.txt s2.txt && ! cmp -s s1.txt s3.txt
then pass "runtime sample seeded"; else fail "runtime sample seeded"; fi
"$LM" sample --weights A/weights.safetensors --prompt "ab" --tokens 20 --temperature 0 >g1.txt &&
"$LM" sample --weights A/weights.safetensors --prompt "ab" --tokens 20 --temperature 0 --seed 99 >g2.txt
if cmp -s g1.txt g2.txt && "$LM" sample --weights A/weights.safetensors --tokens 5 --top-k 1 --seed 1 >k1.txt &&
   "$LM" sample --weights A/weights.safetensors --tokens 5 --temperature 0 >k2.txt && cmp -s k1.txt k2.txt
then pass "runtime sample greedy and top-k 1 agree"; else fail "runtime sample greedy and top-k 1 agree"; fi
"$LM" sample --weights A/weights.safetensors --prompt $'\xc3\xa9' >/dev/null 2>p.err
rc=$?
if [ $rc -eq 1 ] && grep -q 'byte 195 at position 0 is outside the vocabulary \[0, 128)' p.err
then pass "runtime sample prompt outside the vocabulary"; else fail "runtime sample prompt outside the vocabulary" "exit $rc"; fi

if "$LM" eval --weights A/weights.safetensors >ev.out && grep -qE '^eval loss [0-9.]+ \([0-9]+ batches\)$' ev.out &&
   grep -q '^eval accuracy ' ev.out
then pass "runtime eval"; else fail "runtime eval"; fi

# data errors
printf 'abc\310defghijklmnopqrstuvwxyz' >bad.u8
"$LM" train --data bad.u8 --run-dir G --quiet >/dev/null 2>g.err
rc=$?
if [ $rc -eq 1 ] && grep -q 'bad.u8: token id 200 at position 3 is outside the vocabulary \[0, 128)' g.err
then pass "runtime token id outside the vocabulary"; else fail "runtime token id outside the vocabulary" "exit $rc"; cat g.err; fi
printf 'abcdefgh' >short.u8
"$LM" train --data short.u8 --run-dir H --quiet >/dev/null 2>h.err
rc=$?
if [ $rc -eq 1 ] && grep -q 'short.u8: too short for one batch' h.err
then pass "runtime file too short for one batch"; else fail "runtime file too short for one batch" "exit $rc"; fi

# usage errors: exit 2 with the usage text
ok=1
for args in "train --steps x" "train --steps 0" "train --lr" "train --lr -1" "train --frob" "bogus" \
            "sample" "eval" "init --seed -1 --out w" "info extra"; do
  # shellcheck disable=SC2086
  "$LM" $args >/dev/null 2>u.err
  rc=$?
  if [ $rc -ne 2 ] || ! grep -q '^usage: fakelm info' u.err; then ok=0; echo "    '$args': exit $rc"; fi
done
[ $ok = 1 ] && pass "runtime bad flags exit 2 with usage" || fail "runtime bad flags exit 2 with usage"

# ---- classifier on IDX files ----------------------------------------------------------------
mkdir -p "$tmp/mlp"
cd "$tmp/mlp" || exit 1
"$PY" - <<'EOF'
import struct
def idx(path, typ, dims, data):
    with open(path, 'wb') as f:
        f.write(bytes([0, 0, typ, len(dims)]) + b''.join(struct.pack('>I', d) for d in dims) + bytes(data))
for name, n in (('', 18), ('e', 9)):
    xs = [(s * 4 + p) % 256 for s in range(n) for p in range(4)]
    ys = [(xs[s * 4] // 32 + (xs[s * 4 + 3] > 128)) % 3 for s in range(n)]
    idx(name + 'x.idx', 8, [n, 2, 2], xs)
    idx(name + 'y.idx', 8, [n], ys)
EOF
"$MLP" train --run-dir A --quiet >/dev/null 2>a.err && "$MLP" train --run-dir B --quiet >/dev/null 2>&1
if same_run A B && grep -q '"eval_accuracy"' A/metrics.jsonl && grep -q '"samples_per_s"' A/metrics.jsonl
then pass "runtime idx two runs bitwise identical"; else fail "runtime idx two runs bitwise identical"; cat a.err; fi
CK_TEST_CRASH_IN_CHECKPOINT=3 "$MLP" train --run-dir C --quiet >/dev/null 2>&1
"$MLP" train --run-dir C --resume --quiet >/dev/null 2>&1
if same_run A C; then pass "runtime idx resume after SIGKILL"; else fail "runtime idx resume after SIGKILL"; fi

cp x.idx z.idx && gzip z.idx
"$MLP" train --data z.idx.gz,y.idx --run-dir G --quiet >/dev/null 2>g.err
rc=$?
if [ $rc -eq 1 ] && grep -q 'z.idx.gz: gzip-compressed IDX files are not read; decompress with gunzip first' g.err
then pass "runtime gzip IDX refused"; else fail "runtime gzip IDX refused" "exit $rc"; cat g.err; fi
head -c 50 x.idx >t.idx
"$MLP" train --data t.idx,y.idx --run-dir H --quiet >/dev/null 2>h.err
rc=$?
if [ $rc -eq 1 ] && grep -q 't.idx: truncated' h.err; then pass "runtime truncated IDX refused"
else fail "runtime truncated IDX refused" "exit $rc"; cat h.err; fi
"$MLP" train --data ex.idx,y.idx --run-dir I --quiet >/dev/null 2>i.err
rc=$?
if [ $rc -eq 1 ] && grep -q 'y.idx: 18 samples, but ex.idx has 9' i.err; then pass "runtime IDX count mismatch"
else fail "runtime IDX count mismatch" "exit $rc"; cat i.err; fi

"$MLP" train --lr 1e30 --checkpoint-every 1 --run-dir N --quiet >/dev/null 2>n.err
rc=$?
if [ $rc -eq 1 ] && grep -qE 'the loss is (NaN|infinite); stopping \(last good checkpoint: N/checkpoints/ckpt-0000000[0-9].ckpt\)' n.err &&
   [ ! -e N/weights.safetensors ]
then pass "runtime NaN loss stops the run"; else fail "runtime NaN loss stops the run" "exit $rc"; cat n.err; fi

# infer keeps the generated program's behaviour
"$PY" -c "import numpy as np; np.save('x.npy', np.arange(16, dtype=np.float32).reshape(4, 4) / 16)"
if "$MLP" infer --weights A/weights.safetensors --in x.npy --out y.npy &&
   "$PY" -c "import numpy as np; y = np.load('y.npy'); assert y.shape == (4, 3) and np.isfinite(y).all()"
then pass "runtime infer"; else fail "runtime infer"; fi

# ---- streaming writers and readers (ckpt_stream.c prints its own PASS/FAIL lines) ------------
cd "$ROOT" || exit 1
mkdir -p "$tmp/stream"
# shellcheck disable=SC2086
if $CC $FLAGS -I"$ROOT" test-suite/runtime/ckpt_stream.c rt-min/ck_ckpt.c rt-min/ck_data.c rt-min/ck_io.c \
     rt-min/ck_rng.c -lm -o "$tmp/ckpt_stream" 2>"$tmp/cs.log"; then
  "$tmp/ckpt_stream" "$tmp/stream" >"$tmp/cs.out" 2>&1
  rc=$?
  sed -E 's/^(PASS|FAIL) /\1 runtime /' "$tmp/cs.out"
  n=$(grep -c '^FAIL' "$tmp/cs.out")
  nfail=$((nfail + n))
  [ $rc -ne 0 ] && [ "$n" -eq 0 ] && fail "runtime ckpt_stream" "exit $rc"
else
  fail "runtime ckpt_stream build"; sed 's/^/    /' "$tmp/cs.log" | head -20
fi

[ $nfail -eq 0 ]
