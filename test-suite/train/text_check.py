#!/usr/bin/python3
"""test-suite/train/text_check.py CORPUS SAMPLE - is SAMPLE recognisable text?

"Recognisable" is made measurable in two ways, both against the training
corpus (CORPUS, the bytes the model was trained on):
  - printable: at least 95% of SAMPLE's bytes are printable ASCII, newline or tab
    (an untrained byte model emits all 256 values evenly: about 37% printable);
  - words: at least 50% of SAMPLE's words (maximal runs of letters, three or more
    letters long, lower-cased) occur as words in CORPUS (random letter strings
    of that length almost never do).
Prints the measured numbers on one line; exit 0 if both hold, 1 otherwise.
"""

import re
import sys


def words(text):
    return [w.lower() for w in re.findall(r"[A-Za-z]{3,}", text)]


def main():
    corpus = open(sys.argv[1], "rb").read().decode("latin-1")
    sample = open(sys.argv[2], "rb").read()
    vocab = set(words(corpus))
    printable = sum(1 for b in sample if 32 <= b < 127 or b in (9, 10)) / max(1, len(sample))
    ws = words(sample.decode("latin-1"))
    known = sum(1 for w in ws if w in vocab) / max(1, len(ws))
    ok = printable >= 0.95 and known >= 0.5 and len(ws) >= 20
    print("%d bytes, %.1f%% printable (>= 95%%), %d words, %.1f%% of them corpus words (>= 50%%)"
          % (len(sample), 100 * printable, len(ws), 100 * known))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
