"""Writes a seeded random .npy for every input a generated program's `info`
lists, e.g. `input 0: idx i32[8,64] indices in [0, 256)`, and prints the
matching `--in` arguments. Used by test-suite/e2e and test-suite/x86.
usage: make_inputs.py INFO.txt DIR"""
import re
import sys

import numpy as np

info, d = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(1234)
args = []
for line in open(info):
    m = re.match(r'input (\d+): (\S+) (\w+)\[([0-9,]*)\](?: indices in \[0, (\d+)\))?', line)
    if not m:
        continue
    k, name, dt, dims, bound = m.groups()
    shape = tuple(int(x) for x in dims.split(',')) if dims else ()
    if dt == 'f32':
        a = rng.standard_normal(shape).astype(np.float32)
    elif dt == 'f64':
        a = rng.standard_normal(shape)
    elif dt == 'i32':
        a = rng.integers(0, int(bound) if bound else 16, size=shape).astype(np.int32)
    elif dt == 'u8':
        a = rng.integers(0, 256, size=shape).astype(np.uint8)
    else:
        a = rng.integers(0, 2, size=shape).astype(np.bool_)
    p = f'{d}/in{k}.npy'
    np.save(p, a)
    args.append(p)
print(' '.join('--in ' + a for a in args))
