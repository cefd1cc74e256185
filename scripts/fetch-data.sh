#!/usr/bin/env bash
# scripts/fetch-data.sh [DIR] - puts the training data of the samples under
# DIR (default build/data), from Debian packages only (no network):
#
#   DIR/fashion/{train,t10k}-{images-idx3,labels-idx1}-ubyte
#       Fashion-MNIST, gunzipped from dataset-fashion-mnist
#       (/usr/share/datasets/fashion-mnist/*.gz): the generated programs read
#       uncompressed IDX only (docs/train.md, "Data sources").
#   DIR/fashion8/{train,test}-{x,y}.npy
#       the same at 8x8 (64 features) for samples/resmlp.ckm (python3-numpy).
#   DIR/text.u8
#       English text for samples/tiny_gpt.ckm, one token per byte: every
#       fortune file of /usr/share/games/fortunes (fortunes-min gives one,
#       the full `fortunes` package about thirty), concatenated in name order.
#
# Idempotent: a file that is already there and newer than its source is kept.
# Exit 1 with a line naming the missing package when a source is absent.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=${1:-build/data}
FMNIST=${CKC_FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
FORTUNES=${CKC_FORTUNES_DIR:-/usr/share/games/fortunes}

mkdir -p "$DIR/fashion"
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  src="$FMNIST/$f.gz"
  dst="$DIR/fashion/$f"
  if [ ! -f "$src" ]; then
    echo "fetch-data: $src is missing: install the Debian package dataset-fashion-mnist" >&2
    exit 1
  fi
  if [ ! -s "$dst" ] || [ "$src" -nt "$dst" ]; then
    gunzip -c "$src" > "$dst.tmp"
    mv "$dst.tmp" "$dst"
  fi
done

# Fashion-MNIST at 8x8 for samples/resmlp.ckm (64 features): the centre 24x24
# pixels, means of 3x3 blocks, / 255, as float32 .npy; labels as int32 .npy.
# numpy comes with python3-numpy (scripts/install-deps.sh).
if [ ! -s "$DIR/fashion8/test-y.npy" ] || [ "$DIR/fashion/t10k-labels-idx1-ubyte" -nt "$DIR/fashion8/test-y.npy" ]; then
  mkdir -p "$DIR/fashion8"
  /usr/bin/python3 - "$DIR" <<'EOF'
import sys
import numpy as np
d = sys.argv[1]
for src, dst in (("train", "train"), ("t10k", "test")):
    raw = open("%s/fashion/%s-images-idx3-ubyte" % (d, src), "rb").read()
    img = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 28, 28).astype(np.float64)
    small = img[:, 2:26, 2:26].reshape(-1, 8, 3, 8, 3).mean(axis=(2, 4)) / 255.0
    lab = np.frombuffer(open("%s/fashion/%s-labels-idx1-ubyte" % (d, src), "rb").read(),
                        dtype=np.uint8, offset=8).astype(np.int32)
    np.save("%s/fashion8/%s-x.npy" % (d, dst), small.reshape(-1, 64).astype(np.float32))
    np.save("%s/fashion8/%s-y.npy" % (d, dst), lab)
EOF
fi

# The fortune files: regular files without an extension (the .dat indexes and
# .u8 links are skipped), sorted by name so the corpus is the same everywhere
# the same packages are installed.
if [ ! -d "$FORTUNES" ]; then
  echo "fetch-data: $FORTUNES is missing: install the Debian package fortunes-min" >&2
  exit 1
fi
mapfile -t texts < <(find "$FORTUNES" -maxdepth 1 -type f ! -name '*.*' | LC_ALL=C sort)
if [ "${#texts[@]}" -eq 0 ]; then
  echo "fetch-data: no fortune files in $FORTUNES: install the Debian package fortunes-min" >&2
  exit 1
fi
cat "${texts[@]}" > "$DIR/text.u8.tmp"
if cmp -s "$DIR/text.u8.tmp" "$DIR/text.u8" 2>/dev/null; then
  rm -f "$DIR/text.u8.tmp"
else
  mv "$DIR/text.u8.tmp" "$DIR/text.u8"
fi
echo "fetch-data: $DIR/fashion (Fashion-MNIST, 60000 + 10000 images), $DIR/fashion8 (8x8 .npy), $DIR/text.u8 ($(wc -c < "$DIR/text.u8") bytes from ${#texts[@]} fortune files)"
