#!/usr/bin/env bash
# scripts/demo-gpt.sh - inference only: the whole ckc pipeline on the bundled
# prompt with samples/tiny_gpt.ckm (this was `make demo` before training
# landed; `make demo` now trains the MLP, scripts/demo.sh).
#
#   1. compile samples/tiny_gpt.ckm for the portable c99 target into build/demo-gpt/
#   2. build the generated C project with make (a C compiler and make only)
#   3. create weights with a fixed seed (`tinygpt init`)
#   4. turn data/demo_prompt.txt into byte tokens, write them as .npy
#   5. run `tinygpt infer` and print the top-5 next-byte predictions
#
# Only bash and coreutils (od, printf, sort) are used around the generated
# program: no Python. The weights are untrained (`tinygpt init`), so the
# predictions are noise; the point is the pipeline, not the prose. Trained
# text: `tinygpt train` then `tinygpt sample` (README, "Training").
set -euo pipefail
cd "$(dirname "$0")/.."

CKC=${CKC:-build/ckc}
OUT=build/demo-gpt
PROMPT=${1:-data/demo_prompt.txt}
SEED=1337
B=8 T=64 V=256            # the sample's constants (samples/tiny_gpt.ckm)

step() { printf '\n== %s\n' "$*"; }

step "1. compile: $CKC samples/tiny_gpt.ckm -t c99 -o $OUT"
rm -rf "$OUT"
"$CKC" samples/tiny_gpt.ckm -t c99 -o "$OUT"
ls "$OUT"

step "2. build: make -C $OUT"
make -s -C "$OUT"
EXE=$OUT/tinygpt
[ -x "$EXE" ] || { echo "demo: $EXE was not built" >&2; exit 1; }
"$EXE" info | sed -n '1,3p;/^input/,$p'   # the parameter table is long: see `info` yourself

step "3. weights: $EXE init --seed $SEED --out $OUT/weights.safetensors"
"$EXE" init --seed "$SEED" --out "$OUT/weights.safetensors"
echo "wrote $OUT/weights.safetensors ($(wc -c < "$OUT/weights.safetensors") bytes)"

# ---- 4. prompt -> i32[B, T] tokens in a .npy file -------------------------------
# Each byte of the text is one token. The last T bytes are used, padded on the
# left with spaces; every row of the batch holds the same prompt.
step "4. tokens: $PROMPT -> $OUT/tokens.npy (i32[$B, $T])"
mapfile -t bytes < <(od -An -v -tu1 "$PROMPT" | tr -s ' ' '\n' | sed '/^$/d' | tail -n "$T")
while [ "${#bytes[@]}" -lt "$T" ]; do bytes=(32 "${bytes[@]}"); done
printf 'prompt (%d bytes): "' "${#bytes[@]}"
for b in "${bytes[@]}"; do
  if [ "$b" -ge 32 ] && [ "$b" -lt 127 ]; then printf "\\$(printf '%03o' "$b")"; else printf '.'; fi
done
printf '"\n'

npy_i32() { # path rows cols values... : writes a little-endian int32 .npy (format 1.0)
  local path=$1 rows=$2 cols=$3; shift 3
  local dict="{'descr': '<i4', 'fortran_order': False, 'shape': ($rows, $cols), }"
  local total=$((10 + ${#dict} + 1))
  local pad=$(((64 - total % 64) % 64))
  local hlen=$((${#dict} + pad + 1))
  {
    printf '\x93NUMPY\x01\x00'
    printf "\\$(printf '%03o' $((hlen & 255)))\\$(printf '%03o' $((hlen >> 8)))"
    printf '%s%*s\n' "$dict" "$pad" ''
    local r v
    for ((r = 0; r < rows; r++)); do
      for v in "$@"; do printf "\\$(printf '%03o' "$v")\\000\\000\\000"; done
    done
  } > "$path"
}
npy_i32 "$OUT/tokens.npy" "$B" "$T" "${bytes[@]}"

step "5. infer: $EXE infer --weights $OUT/weights.safetensors --in $OUT/tokens.npy --out $OUT/logits.npy"
"$EXE" infer --weights "$OUT/weights.safetensors" --in "$OUT/tokens.npy" --out "$OUT/logits.npy"

# ---- top-5 of the last position of row 0 -----------------------------------------
# logits.npy is f32[B, T, V]; its data starts after the 10-byte preamble and the
# header (format 1.0: header length at bytes 8-9, little-endian).
read -r lo hi < <(od -An -j8 -N2 -tu1 "$OUT/logits.npy")
data_off=$((10 + lo + hi * 256))
last_off=$((data_off + (T - 1) * V * 4))
echo
echo "top-5 next-byte predictions after the prompt (row 0, position $((T - 1))):"
od -An -v -j "$last_off" -N $((V * 4)) -tf4 -w4 "$OUT/logits.npy" |
  awk '{ printf "%d %s\n", NR - 1, $1 }' |
  awk '{ m[NR] = $2; t[NR] = $1; if (NR == 1 || $2 > mx) mx = $2 }
       END { s = 0; for (i = 1; i <= NR; i++) s += exp(m[i] - mx);
             for (i = 1; i <= NR; i++) printf "%s %.6f %.4f\n", t[i], m[i], exp(m[i] - mx) / s }' |
  sort -k2,2gr | sed -n '1,5p' |
  while read -r tok logit prob; do
    if [ "$tok" -ge 33 ] && [ "$tok" -lt 127 ]; then ch="'$(printf "\\$(printf '%03o' "$tok")")'"
    elif [ "$tok" -eq 32 ]; then ch="' ' (space)"
    elif [ "$tok" -eq 10 ]; then ch="'\\n'"
    else ch=$(printf '0x%02x' "$tok"); fi
    printf '  byte %3d  %-12s  logit %9.4f  p=%.4f\n' "$tok" "$ch" "$logit" "$prob"
  done
echo
echo "note: the weights are untrained (seed $SEED): the predictions are noise, not English."
echo "      they show the pipeline working: .ckm -> C99 -> make -> init -> infer."
