"""Deterministic hostile inputs for test-suite/robust/run.sh (seeded)."""
import os
import random
import sys

out = sys.argv[1]
rng = random.Random(20261124)


def w(name, data):
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(os.path.join(out, name), mode) as f:
        f.write(data)


N = 100_000
w("empty.ckm", "")
w("comments.ckm", "// nothing here\n/* still nothing */\n")
w("garbage.ckm", bytes(rng.randrange(256) for _ in range(4096)))
w("nul.ckm", b"const A = 1;\n\x00\x00model M {\n  fn forward(x: f32[4]) -> f32[4] { return x; }\n}\n")
w("ucomment.ckm", "const A = 1;\n/* this comment never ends\nmodel M {}\n")
w("ustring.ckm", 'const A = 1;\ntrain M { data = tokens("data/x.u8); }\n')
w("deep_parens.ckm", "const X = " + "(" * N + "1" + ")" * N + ";\n")
w("deep_brackets.ckm", "model M { param w: f32" + "[" * N + "1" + "]" * N + "; }\n")
w("deep_blocks.ckm", "model M { fn forward(x: f32[4]) -> f32[4] { " + "for b in x { " * N + "}" * N + " return x; } }\n")
w("deep_unary.ckm", "const X = " + "-" * N + "1;\n")
w("huge_int.ckm", "const X = 99999999999999999999999999999;\n")
w("huge_float.ckm", "const X = 1e99999;\n")
w("shape_overflow.ckm",
  "model M {\n  param w: f32[4294967296, 4294967296, 4294967296];\n"
  "  fn forward(x: f32[4]) -> f32[4] { return x; }\n}\n")
w("const_overflow.ckm",
  "const A = 9223372036854775807;\nconst B = A + 1;\n"
  "model M {\n  fn forward(x: f32[4]) -> f32[4] { return x; }\n}\n")
w("long_line.ckm", "const " + "x" * 1_000_000 + " = ;\n")
w("recursive.ckm",
  "layer R(n) {\n  inner: R(n);\n  fn forward(x: f32[4]) -> f32[4] { return inner(x); }\n}\n"
  "model M {\n  r: R(1);\n  fn forward(x: f32[4]) -> f32[4] { return r(x); }\n}\n")
w("many_errors.ckm", "".join(f"const C{i} = ;\n" for i in range(100)))

samples = sorted(f for f in os.listdir("samples") if f.endswith(".ckm")) if os.path.isdir("samples") else []
for s in samples:
    src = open(os.path.join("samples", s), "rb").read()
    for k in range(25):
        b = bytearray(src)
        for _ in range(rng.randrange(1, 6)):
            if not b:
                break
            op = rng.randrange(3)
            i = rng.randrange(len(b))
            if op == 0:
                del b[i:i + rng.randrange(1, 8)]
            elif op == 1:
                b.insert(i, rng.choice(b"(){}[];:,.=+-*/@<>!\"0123456789abcxyz_ \n\x00\xff"))
            else:
                j = rng.randrange(len(b))
                b[i], b[j] = b[j], b[i]
        w(f"mut_{s[:-4]}_{k:02d}.ckm", bytes(b))
