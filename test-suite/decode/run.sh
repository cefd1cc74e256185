#!/usr/bin/env bash
# test-suite/decode/run.sh - the decode entry (passes/decode.c): generation
# with a K/V cache, on c99 and on each x86 target the CPU can run.
#   - harness.c against the same project's forward: decode's logits for
#     positions 0..T-1 equal forward's at those positions within the infer
#     tolerance 1e-5 * max(1, max|forward|) (and bit for bit, which the
#     harness reports), for samples/tiny_gpt.ckm with B = 3 and
#     lm_variants.ckm (B = 2); error codes for a bad position / token; x86:
#     the same results on 1 and 3 threads;
#   - `sample` with the cache (--kv-cache on, the default), without it
#     (--kv-cache off) and from a project compiled with
#     --disable-pass=decode print the same text for the same seed, for a
#     prompt that starts inside the context, a generation that runs past T
#     (the window slides: forward takes over), and a prompt longer than T;
#   - models the analysis rejects (reject_*.ckm) get no decode entry and
#     still sample;
#   - ckc-lint on the c99 tiny_gpt sources with the decode function.
# Prints PASS/FAIL lines; exits nonzero if anything failed.
set -u
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
CKC="${CKC:-build/ckc}"
CKC_LINT="${CKC_LINT:-build/ckc-lint}"
case $CKC in /*) ;; *) CKC="$ROOT/$CKC" ;; esac
case $CKC_LINT in /*) ;; *) CKC_LINT="$ROOT/$CKC_LINT" ;; esac
TMO="timeout 300"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1${2:+ ($2)}"; status=1; }

targets=(c99)
if [ "$(uname -m)" = x86_64 ]; then
  if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then targets+=(x86-avx2)
  else echo "NOTE decode: this CPU lacks avx2/fma: x86-avx2 skipped"; fi
  if grep -qw avx512f /proc/cpuinfo; then targets+=(x86-avx512)
  else echo "NOTE decode: this CPU lacks avx512f: x86-avx512 skipped"; fi
fi

# project DIR SRC TARGET FLAGS...: compile and build; prints the exe name
project() {
  local d=$1 src=$2 t=$3
  shift 3
  if ! $TMO "$CKC" "$src" -t "$t" -o "$d" "$@" >"$tmp/ckc.log" 2>&1; then
    sed 's/^/    /' "$tmp/ckc.log" | head -10 >&2
    return 1
  fi
  if ! make -s -C "$d" >"$tmp/make.log" 2>&1; then
    sed 's/^/    /' "$tmp/make.log" | head -10 >&2
    return 1
  fi
  sed -n 's/^\(.*\): \$(OBJS).*/\1/p' "$d/Makefile" | head -n 1
}

# harness DIR EXE: harness.c built with the project's sources and CFLAGS
harness() {
  local d=$1 exe=$2 cflags srcs pooled=
  cflags=$(sed -n 's/^CFLAGS = //p' "$d/Makefile")
  srcs=$(sed -n 's/^SRCS = //p' "$d/Makefile" | tr ' ' '\n' | grep -v '^main\.c$' | sed "s|^|$d/|" | tr '\n' ' ')
  grep -q 'CkPool \*pool' "$d/$exe.h" && pooled=-DPOOLED
  # shellcheck disable=SC2086
  cc $cflags $pooled -DMODEL="$exe" -DUPPER="$(tr a-z A-Z <<<"$exe")" -I"$d" -o "$d/harness" \
    test-suite/decode/harness.c $srcs -lm -lpthread 2>&1 | head -10
  [ -x "$d/harness" ]
}

# decode_vs_forward NAME SRC TARGET B FLAGS...
decode_vs_forward() {
  local name=$1 src=$2 t=$3 b=$4 d="$tmp/$1" exe out1 out3
  shift 4
  if ! exe=$(project "$d" "$src" "$t" "$@"); then fail "$name build"; return; fi
  if ! grep -q "${exe}_decode(" "$d/$exe.h"; then fail "$name: no decode entry"; return; fi
  if ! harness "$d" "$exe"; then fail "$name harness build"; return; fi
  if out1=$($TMO "$d/harness" 1 11 "$b"); then pass "$name decode == forward ($out1)"
  else fail "$name decode == forward" "$out1"; return; fi
  if [ "$t" != c99 ]; then
    out3=$($TMO "$d/harness" 3 11 "$b")
    if [ "$out3" = "$out1" ]; then pass "$name decode on 3 threads == 1 thread"
    else fail "$name decode threads" "$out3 vs $out1"; fi
  fi
}

# same_samples NAME DIR EXE NODECODE_DIR: the three ways to sample agree
same_samples() {
  local name=$1 d=$2 exe=$3 nd=$4 w long
  w="$tmp/w_$(tr -c 'a-zA-Z0-9\n' _ <<<"$1").safetensors"
  if ! "$d/$exe" init --seed 3 --out "$w" >/dev/null 2>&1; then fail "$name init"; return; fi
  long=$(printf 'a long prompt that does not fit the sixty-four token window, so the forward runs first %.0s' 1)
  local cfg i=0
  for cfg in "--prompt The| --tokens 90 --seed 5" "--prompt x| --tokens 40 --seed 9 --temperature 0.7 --top-k 5" \
             "--prompt $long| --tokens 10 --seed 2"; do
    i=$((i + 1))
    local prompt=${cfg%%|*} rest=${cfg#*|} a b c
    prompt=${prompt#--prompt }
    # shellcheck disable=SC2086
    a=$($TMO "$d/$exe" sample --weights "$w" --prompt "$prompt" $rest --kv-cache on 2>&1)
    # shellcheck disable=SC2086
    b=$($TMO "$d/$exe" sample --weights "$w" --prompt "$prompt" $rest --kv-cache off 2>&1)
    # shellcheck disable=SC2086
    c=$($TMO "$nd/$exe" sample --weights "$w" --prompt "$prompt" $rest 2>&1)
    if [ -n "$a" ] && [ "$a" = "$b" ] && [ "$a" = "$c" ] && [ ${#a} -gt ${#prompt} ]; then
      pass "$name sample $i: cache on == off == no decode pass"
    else
      fail "$name sample $i" "on/off/no-decode differ"
      printf '    on:  %s\n    off: %s\n    nd:  %s\n' "$a" "$b" "$c"
    fi
  done
}

for t in "${targets[@]}"; do
  decode_vs_forward "decode/$t/tiny_gpt_B3" samples/tiny_gpt.ckm "$t" 3 -D B=3
  decode_vs_forward "decode/$t/lm_variants" test-suite/decode/lm_variants.ckm "$t" 2
  if exe=$(project "$tmp/nd_$t" samples/tiny_gpt.ckm "$t" -D B=3 --disable-pass=decode); then
    if grep -q "${exe}_decode" "$tmp/nd_$t/$exe.h"; then fail "decode/$t --disable-pass=decode still has decode"
    else pass "decode/$t --disable-pass=decode: no decode entry"; fi
    [ -d "$tmp/decode/$t/tiny_gpt_B3" ] && same_samples "decode/$t/tiny_gpt" "$tmp/decode/$t/tiny_gpt_B3" "$exe" "$tmp/nd_$t"
  else
    fail "decode/$t no-decode build"
  fi
done

# the analysis rejects these: no decode entry, sample still works
for f in test-suite/decode/reject_*.ckm; do
  n=$(basename "$f" .ckm)
  if ! exe=$(project "$tmp/$n" "$f" c99); then fail "decode/$n build"; continue; fi
  if grep -q "${exe}_decode" "$tmp/$n/$exe.h" || grep -q "^graph decode" <("$CKC" --emit=ir "$f"); then
    fail "decode/$n: a decode entry was derived"
    continue
  fi
  "$tmp/$n/$exe" init --seed 1 --out "$tmp/$n.safetensors" >/dev/null 2>&1
  # tokens below 30 are control bytes: count them (prompt "" = token 0, then 12 and a newline)
  $TMO "$tmp/$n/$exe" sample --weights "$tmp/$n.safetensors" --prompt "" --tokens 12 --seed 1 >"$tmp/$n.out" 2>&1
  rc=$?
  nbytes=$(wc -c <"$tmp/$n.out")
  if [ $rc -eq 0 ] && [ "$nbytes" -eq 13 ]; then pass "decode/$n: rejected, samples with forward"
  else fail "decode/$n sample" "exit $rc, $nbytes bytes"; fi
done

# ckc-lint on the emitted decode function (c99 tiny_gpt)
d="$tmp/decode/c99/tiny_gpt_B3"
if [ -x "$CKC_LINT" ] && [ -f "$d/tinygpt.c" ]; then
  if "$CKC_LINT" -I "$d" "$d/tinygpt.c" "$d/tinygpt.h" "$d/main.c" "$d/ck_kernels.c" "$d/ck_main.c" >"$tmp/lint.log" 2>&1; then
    pass "decode/c99 ckc-lint"
  else fail "decode/c99 ckc-lint"; head -10 "$tmp/lint.log"; fi
fi
exit $status
