#!/usr/bin/env bash
# scripts/demo.sh - `make demo`: train samples/mlp.ckm on Fashion-MNIST.
#
#   1. data: scripts/fetch-data.sh gunzips Fashion-MNIST (Debian package
#      dataset-fashion-mnist) into build/data/fashion/
#   2. compile samples/mlp.ckm for the portable c99 target into build/demo/
#   3. build the generated C project with make (a C compiler and make only)
#   4. `mlp train`: the sample's train block (Adam, cosine decay, 2800 steps =
#      3 epochs, about a minute on one core), run directory build/demo/run
#   5. `mlp eval` on the 10000 test images: the test accuracy (about 0.875)
#   6. where the run directory, the weights and the loss plot are
#
# Everything around the generated program is bash and coreutils. The older
# inference-only demo of the tiny GPT is scripts/demo-gpt.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

CKC=${CKC:-build/ckc}
OUT=build/demo
RUN=$OUT/run
START=$(date +%s)

step() { printf '\n== %s\n' "$*"; }

step "1. data: scripts/fetch-data.sh"
scripts/fetch-data.sh

step "2. compile: $CKC samples/mlp.ckm -t c99 -o $OUT"
rm -rf "$OUT"
"$CKC" samples/mlp.ckm -t c99 -o "$OUT"
ls "$OUT"

step "3. build: make -C $OUT"
make -s -C "$OUT"
EXE=$OUT/mlp
[ -x "$EXE" ] || { echo "demo: $EXE was not built" >&2; exit 1; }
"$EXE" info | grep -v '^  '

step "4. train: $EXE train --run-dir $RUN"
"$EXE" train --run-dir "$RUN"

step "5. evaluate: $EXE eval --weights $RUN/weights.safetensors (the Fashion-MNIST test set)"
"$EXE" eval --weights "$RUN/weights.safetensors" | tee "$OUT/eval.txt"
acc=$(sed -n 's/^eval accuracy \([0-9.]*\) .*/\1/p' "$OUT/eval.txt")

step "6. results"
echo "test accuracy:   ${acc:-?} (the Fashion-MNIST test set: 9984 of its 10000 images, 156 full batches of 64)"
echo "run directory:   $RUN/"
echo "  manifest:      $RUN/manifest.json (command, seed, optimizer, data digests)"
echo "  metrics:       $RUN/metrics.jsonl ($(wc -l < "$RUN/metrics.jsonl") records)"
echo "  loss plot:     $RUN/loss.svg (open it in a browser)"
echo "  weights:       $RUN/weights.safetensors (loads into PyTorch's nn.Linear pair unchanged)"
echo "  checkpoints:   $(ls "$RUN/checkpoints" | tr '\n' ' ')"
echo "total time:      $(( $(date +%s) - START )) s"
