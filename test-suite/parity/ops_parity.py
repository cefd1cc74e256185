#!/usr/bin/python3
"""test-suite/parity/ops_parity.py - every primitive op of ckc against PyTorch.

TOLERANCE: a case passes when  max |ckc - torch| / max(1, |torch|) <= 1e-5
(torch float32 on the same float32 inputs; integer and bool results must match
exactly). The observed maximum is printed for every case.

For each case this writes a tiny model whose `forward` applies one op to its
arguments (every tensor, weights included, is a forward input), compiles it
with `build/ckc -t c99`, builds the project with make, runs `init` (the model
has no parameters) and `infer` on .npy inputs written by numpy, and compares
the .npy result with the PyTorch result. Shapes are drawn from a seeded RNG,
several per op, with NumPy broadcasting cases. Cases compile in parallel
(CKC_PARITY_JOBS, default 2). CKC_OPS_FILTER=sub1,sub2 runs the cases whose tag contains one of them.

Output: `PASS op/<name>/<case> maxrel=...` or `FAIL op/<name>/<case> ...`;
exit status 1 if any case failed.
"""

import concurrent.futures
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ckc_harness as H  # noqa: E402

TOL = 1e-5
torch.set_num_threads(1)
rng = np.random.default_rng(20240601)


# ---- input generators (seeded) ---------------------------------------------------

def dim(lo=2, hi=6):
    return int(rng.integers(lo, hi + 1))


def fl(shape, lo=-2.0, hi=2.0):
    return rng.uniform(lo, hi, size=shape).astype(np.float32)


def nonzero(shape):
    mag = rng.uniform(0.5, 2.0, size=shape)
    sign = np.where(rng.random(size=shape) < 0.5, -1.0, 1.0)
    return (mag * sign).astype(np.float32)


def ints_f(shape, lo=-2, hi=2):
    """Small integers stored as f32: comparisons then see equal values too."""
    return rng.integers(lo, hi + 1, size=shape).astype(np.float32)


def i32(shape, lo, hi):
    return rng.integers(lo, hi, size=shape).astype(np.int32)


def boolean(shape):
    return rng.random(size=shape) < 0.5


# ---- cases ------------------------------------------------------------------------

CASES = []


def case(op, name, args, expr, ref, prelude=""):
    """args: list of (argument name, np.ndarray); expr: the .ckm expression;
    ref: function of torch tensors (same order) giving the expected result;
    prelude: top-level declarations placed before the model."""
    CASES.append({"op": op, "name": name, "args": args, "expr": expr, "ref": ref,
                  "prelude": prelude})


def build_cases():
    # -- binary elementwise, NumPy broadcasting
    binops = [
        ("add", "a + b", lambda a, b: a + b, fl, fl),
        ("sub", "a - b", lambda a, b: a - b, fl, fl),
        ("mul", "a * b", lambda a, b: a * b, fl, fl),
        ("div", "a / b", lambda a, b: a / b, fl, nonzero),
        ("maximum", "maximum(a, b)", torch.maximum, ints_f, ints_f),
        ("minimum", "minimum(a, b)", torch.minimum, ints_f, ints_f),
        ("pow", "pow(a, b)", torch.pow, lambda s: fl(s, 0.5, 2.0), fl),
    ]
    for op, expr, ref, ga, gb in binops:
        m, n, k = dim(), dim(), dim()
        case(op, "same", [("a", ga((m, n))), ("b", gb((m, n)))], expr, ref)
        case(op, "bcast_row", [("a", ga((m, n, k))), ("b", gb((k,)))], expr, ref)
        case(op, "bcast_both", [("a", ga((m, 1, k))), ("b", gb((n, 1)))], expr, ref)
    m, n = dim(), dim()
    case("add", "literal", [("a", fl((m, n)))], "a * 2.0 + 1.0", lambda a: a * 2.0 + 1.0)
    case("sub", "literal_left", [("a", fl((m, n)))], "2.5 - a", lambda a: 2.5 - a)
    case("div", "literal", [("a", fl((m, n)))], "a / 4.0", lambda a: a / 4.0)
    case("pow", "literal", [("a", fl((m, n), 0.5, 2.0))], "pow(a, 3.0)", lambda a: torch.pow(a, 3.0))

    # -- unary elementwise, rank 2 and rank 4
    unops = [
        ("neg", "-a", lambda a: -a, fl),
        ("abs", "abs(a)", torch.abs, fl),
        ("exp", "exp(a)", torch.exp, lambda s: fl(s, -3.0, 3.0)),
        ("log", "log(a)", torch.log, lambda s: fl(s, 0.1, 5.0)),
        ("sqrt", "sqrt(a)", torch.sqrt, lambda s: fl(s, 0.1, 5.0)),
        ("rsqrt", "rsqrt(a)", torch.rsqrt, lambda s: fl(s, 0.5, 4.0)),
        ("tanh", "tanh(a)", torch.tanh, lambda s: fl(s, -4.0, 4.0)),
        ("sigmoid", "sigmoid(a)", torch.sigmoid, lambda s: fl(s, -6.0, 6.0)),
        ("relu", "relu(a)", torch.relu, fl),
        ("gelu", "gelu(a)", lambda a: F.gelu(a), lambda s: fl(s, -4.0, 4.0)),
        ("gelu_tanh", 'gelu(a, approximate = "tanh")', lambda a: F.gelu(a, approximate="tanh"),
         lambda s: fl(s, -4.0, 4.0)),
        ("silu", "silu(a)", F.silu, lambda s: fl(s, -6.0, 6.0)),
    ]
    for op, expr, ref, g in unops:
        case(op, "rank2", [("a", g((dim(), dim(8, 16))))], expr, ref)
        case(op, "rank4", [("a", g((2, dim(), dim(), dim())))], expr, ref)
    case("gelu", "explicit_none", [("a", fl((dim(), dim()), -4, 4))], 'gelu(a, approximate = "none")',
         lambda a: F.gelu(a))

    # -- comparisons (integer-valued floats so that equality happens)
    cmps = [("lt", "<", torch.lt), ("le", "<=", torch.le), ("gt", ">", torch.gt),
            ("ge", ">=", torch.ge), ("eq", "==", torch.eq), ("ne", "!=", torch.ne)]
    for op, sym, ref in cmps:
        m, n = dim(), dim()
        case(op, "same", [("a", ints_f((m, n))), ("b", ints_f((m, n)))], "a %s b" % sym, ref)
        case(op, "bcast", [("a", ints_f((m, 1))), ("b", ints_f((n,)))], "a %s b" % sym, ref)
    case("gt", "literal", [("a", ints_f((dim(), dim())))], "a > 0.0", lambda a: a > 0.0)

    # -- where
    m, n = dim(), dim()
    case("where", "bool_input", [("c", boolean((m, n))), ("a", fl((m, n))), ("b", fl((m, n)))],
         "where(c, a, b)", torch.where)
    case("where", "bcast", [("c", boolean((m, 1))), ("a", fl((n,))), ("b", fl((m, n)))],
         "where(c, a, b)", torch.where)
    case("where", "from_compare", [("a", fl((m, n))), ("b", fl((m, n)))],
         "where(a > b, a, b * 0.5)", lambda a, b: torch.where(a > b, a, b * 0.5))

    # -- cast
    m, n = dim(), dim()
    case("cast", "f32_to_i32", [("a", fl((m, n), -5.0, 5.0))], "cast(a, i32)",
         lambda a: a.to(torch.int32))
    case("cast", "i32_to_f32", [("a", i32((m, n), -100, 100))], "cast(a, f32)",
         lambda a: a.to(torch.float32))
    case("cast", "bool_to_f32", [("a", boolean((m, n)))], "cast(a, f32)",
         lambda a: a.to(torch.float32))

    # -- matmul (batched, broadcast batch, transposed operands)
    m, k, n, b = dim(2, 9), dim(2, 33), dim(2, 9), dim(2, 4)
    case("matmul", "2d", [("a", fl((m, k))), ("b", fl((k, n)))], "a @ b", torch.matmul)
    case("matmul", "batched", [("a", fl((b, m, k))), ("b", fl((b, k, n)))], "a @ b", torch.matmul)
    case("matmul", "bcast_batch", [("a", fl((b, m, k))), ("b", fl((k, n)))], "a @ b", torch.matmul)
    case("matmul", "bcast_4d", [("a", fl((2, b, m, k))), ("b", fl((b, k, n)))], "a @ b", torch.matmul)
    case("matmul", "lhs_bcast", [("a", fl((m, k))), ("b", fl((b, k, n)))], "a @ b", torch.matmul)
    case("matmul", "transpose_b", [("a", fl((b, m, k))), ("b", fl((b, n, k)))],
         "matmul(a, b, transpose_b = true)", lambda a, b_: a @ b_.transpose(-1, -2))
    case("matmul", "transpose_a", [("a", fl((k, m))), ("b", fl((k, n)))],
         "matmul(a, b, transpose_a = true)", lambda a, b_: a.t() @ b_)
    case("matmul", "transpose_both", [("a", fl((b, k, m))), ("b", fl((n, k)))],
         "matmul(a, b, transpose_a = true, transpose_b = true)",
         lambda a, b_: a.transpose(-1, -2) @ b_.t())
    case("matmul", "at_transpose", [("a", fl((m, k))), ("b", fl((n, k)))], "a @ transpose(b)",
         lambda a, b_: a @ b_.t())
    kk = 256
    case("matmul", "long_k", [("a", fl((4, kk), -1, 1)), ("b", fl((kk, 5), -1, 1))], "a @ b",
         torch.matmul)

    # -- transpose / permute
    s3 = (dim(), dim(), dim())
    case("transpose", "last_two", [("a", fl(s3))], "transpose(a)", lambda a: a.transpose(-1, -2))
    case("transpose", "axes_0_2", [("a", fl(s3))], "transpose(a, 0, 2)", lambda a: a.transpose(0, 2))
    perm = tuple(int(p) for p in rng.permutation(4))
    case("permute", "rank4", [("a", fl((2, dim(), dim(), dim())))],
         "permute(a, (%s))" % ", ".join(map(str, perm)), lambda a, p=perm: a.permute(*p))
    case("permute", "heads", [("a", fl((2, 5, 3, 4)))], "permute(a, (0, 2, 1, 3))",
         lambda a: a.permute(0, 2, 1, 3))
    case("permute", "i32", [("a", i32((3, 4, 5), -50, 50))], "permute(a, (2, 0, 1))",
         lambda a: a.permute(2, 0, 1))

    # -- reshape / broadcast
    a, b_, c = dim(), dim(), 4
    case("reshape", "merge", [("x", fl((a, b_, c)))], "reshape(x, (%d, %d))" % (a * b_, c),
         lambda x, s=(a * b_, c): x.reshape(s))
    case("reshape", "infer_dim", [("x", fl((a, b_, c)))], "reshape(x, (-1, 2))",
         lambda x: x.reshape(-1, 2))
    case("reshape", "split", [("x", fl((a * b_, c)))], "reshape(x, (%d, %d, 2, 2))" % (a, b_),
         lambda x, s=(a, b_, 2, 2): x.reshape(s))
    m, n = dim(), dim()
    case("broadcast", "col", [("x", fl((m, 1)))], "broadcast(x, (3, %d, %d))" % (m, n),
         lambda x, s=(3, m, n): torch.broadcast_to(x, s))
    case("broadcast", "row", [("x", fl((n,)))], "broadcast(x, (%d, %d))" % (m, n),
         lambda x, s=(m, n): torch.broadcast_to(x, s))

    # -- slice
    x = fl((dim(3, 5), 9, dim(2, 4)))
    case("slice", "basic", [("x", x)], "slice(x, axis = 1, start = 1, end = 4)", lambda t: t[:, 1:4])
    case("slice", "step", [("x", x)], "slice(x, axis = 1, start = 0, end = 9, step = 2)",
         lambda t: t[:, 0:9:2])
    case("slice", "neg_start", [("x", x)], "slice(x, axis = 1, start = -3, end = 9)",
         lambda t: t[:, -3:])
    case("slice", "neg_end", [("x", x)], "slice(x, axis = 2, start = 0, end = -1)",
         lambda t: t[:, :, 0:-1])
    case("slice", "axis0", [("x", x)], "slice(x, axis = 0, start = 1, end = 3)", lambda t: t[1:3])

    # -- concat
    m, n = dim(), dim()
    case("concat", "axis0", [("a", fl((m, n))), ("b", fl((dim(), n)))], "concat(a, b, axis = 0)",
         lambda a_, b2: torch.cat([a_, b2], 0))
    case("concat", "three_axis1", [("a", fl((2, m, n))), ("b", fl((2, 1, n))), ("c", fl((2, 3, n)))],
         "concat(a, b, c, axis = 1)", lambda a_, b2, c_: torch.cat([a_, b2, c_], 1))
    case("concat", "last_i32", [("a", i32((m, 2), 0, 9)), ("b", i32((m, 3), 0, 9))],
         "concat(a, b, axis = 1)", lambda a_, b2: torch.cat([a_, b2], 1))

    # -- reductions
    x = fl((dim(), dim(), dim()))
    case("sum", "all", [("x", x)], "sum(x)", lambda t: t.sum())
    case("sum", "axis1", [("x", x)], "sum(x, axis = 1)", lambda t: t.sum(1))
    case("sum", "axes_keep", [("x", x)], "sum(x, axis = (0, 2), keepdim = true)",
         lambda t: t.sum((0, 2), keepdim=True))
    case("sum", "long", [("x", fl((3, 1000)))], "sum(x, axis = 1)", lambda t: t.sum(1))
    case("mean", "last", [("x", x)], "mean(x, axis = -1)", lambda t: t.mean(-1))
    case("mean", "axes", [("x", x)], "mean(x, axis = (1, 2))", lambda t: t.mean((1, 2)))
    case("mean", "all", [("x", x)], "mean(x)", lambda t: t.mean())
    case("max", "axis0", [("x", x)], "max(x, axis = 0)", lambda t: t.amax(0))
    case("max", "axes_keep", [("x", x)], "max(x, axis = (0, 1), keepdim = true)",
         lambda t: t.amax((0, 1), keepdim=True))
    case("argmax", "default", [("x", x)], "argmax(x)", lambda t: t.argmax(-1).to(torch.int32))
    case("argmax", "axis0_keep", [("x", x)], "argmax(x, axis = 0, keepdim = true)",
         lambda t: t.argmax(0, keepdim=True).to(torch.int32))

    # -- softmax / log_softmax
    x = fl((dim(), dim(), dim(4, 12)), -4, 4)
    case("softmax", "last", [("x", x)], "softmax(x)", lambda t: torch.softmax(t, -1))
    case("softmax", "axis1", [("x", x)], "softmax(x, axis = 1)", lambda t: torch.softmax(t, 1))
    case("softmax", "large", [("x", fl((3, 50), 50, 90))], "softmax(x)", lambda t: torch.softmax(t, -1))
    case("log_softmax", "last", [("x", x)], "log_softmax(x)", lambda t: torch.log_softmax(t, -1))
    case("log_softmax", "axis0", [("x", x)], "log_softmax(x, axis = 0)",
         lambda t: torch.log_softmax(t, 0))

    # -- layernorm / rmsnorm (over the last axis)
    C = dim(4, 24)
    x = fl((dim(), dim(), C), -3, 3)
    w, b2 = fl((C,), 0.5, 1.5), fl((C,))
    case("layernorm", "affine", [("x", x), ("w", w), ("b", b2)], "layernorm(x, w, b)",
         lambda t, w_, b_: F.layer_norm(t, (t.shape[-1],), w_, b_, 1e-5))
    case("layernorm", "plain", [("x", x)], "layernorm(x)",
         lambda t: F.layer_norm(t, (t.shape[-1],), None, None, 1e-5))
    case("layernorm", "weight_only", [("x", x), ("w", w)], "layernorm(x, w)",
         lambda t, w_: F.layer_norm(t, (t.shape[-1],), w_, None, 1e-5))
    case("layernorm", "eps", [("x", x * 0.01), ("w", w), ("b", b2)], "layernorm(x, w, b, eps = 1e-3)",
         lambda t, w_, b_: F.layer_norm(t, (t.shape[-1],), w_, b_, 1e-3))

    def rms(t, w_=None, eps=1e-5):
        y = t * torch.rsqrt(t.pow(2).mean(-1, keepdim=True) + eps)
        return y * w_ if w_ is not None else y
    case("rmsnorm", "weight", [("x", x), ("w", w)], "rmsnorm(x, w)", lambda t, w_: rms(t, w_))
    case("rmsnorm", "eps", [("x", x * 0.01), ("w", w)], "rmsnorm(x, w, eps = 1e-3)",
         lambda t, w_: rms(t, w_, 1e-3))
    case("rmsnorm", "plain", [("x", x)], "rmsnorm(x)", lambda t: rms(t))

    # -- embedding
    V, C = dim(5, 40), dim(2, 9)
    table = fl((V, C))
    case("embedding", "1d", [("table", table), ("idx", i32((dim(3, 10),), 0, V))], "embed(table, idx)",
         lambda t, i: F.embedding(i.long(), t))
    case("embedding", "2d", [("table", table), ("idx", i32((dim(), dim()), 0, V))], "embed(table, idx)",
         lambda t, i: F.embedding(i.long(), t))

    # -- conv2d (stride, padding, groups, optional bias)
    def conv(N, Cin, Hh, Ww, OC, KH, KW, groups=1):
        return fl((N, Cin, Hh, Ww)), fl((OC, Cin // groups, KH, KW), -0.5, 0.5), fl((OC,))
    xx, ww, bb = conv(2, 3, 7, 8, 4, 3, 3)
    case("conv2d", "basic", [("x", xx), ("w", ww), ("b", bb)], "conv2d(x, w, b)",
         lambda x_, w_, b_: F.conv2d(x_, w_, b_))
    case("conv2d", "nobias", [("x", xx), ("w", ww)], "conv2d(x, w)", lambda x_, w_: F.conv2d(x_, w_))
    case("conv2d", "stride2_pad1", [("x", xx), ("w", ww), ("b", bb)],
         "conv2d(x, w, b, stride = 2, padding = 1)",
         lambda x_, w_, b_: F.conv2d(x_, w_, b_, stride=2, padding=1))
    xx, ww, bb = conv(2, 4, 6, 9, 6, 3, 2, groups=2)
    case("conv2d", "groups2_tuple", [("x", xx), ("w", ww), ("b", bb)],
         "conv2d(x, w, b, stride = (2, 1), padding = (1, 0), groups = 2)",
         lambda x_, w_, b_: F.conv2d(x_, w_, b_, stride=(2, 1), padding=(1, 0), groups=2))
    xx, ww, bb = conv(1, 4, 5, 5, 4, 3, 3, groups=4)
    case("conv2d", "depthwise", [("x", xx), ("w", ww), ("b", bb)],
         "conv2d(x, w, b, padding = 1, groups = 4)",
         lambda x_, w_, b_: F.conv2d(x_, w_, b_, padding=1, groups=4))

    # -- pooling (floor mode; avg counts padding in the divisor like PyTorch)
    x = fl((2, 3, 7, 8))
    case("maxpool2d", "k2", [("x", x)], "maxpool2d(x, kernel = 2)", lambda t: F.max_pool2d(t, 2))
    case("maxpool2d", "k3_s2_p1", [("x", x)], "maxpool2d(x, kernel = 3, stride = 2, padding = 1)",
         lambda t: F.max_pool2d(t, 3, 2, 1))
    case("maxpool2d", "rect", [("x", x)], "maxpool2d(x, kernel = (2, 3), stride = (1, 2))",
         lambda t: F.max_pool2d(t, (2, 3), (1, 2)))
    case("avgpool2d", "k2", [("x", x)], "avgpool2d(x, kernel = 2)", lambda t: F.avg_pool2d(t, 2))
    case("avgpool2d", "k3_s2_p1", [("x", x)], "avgpool2d(x, kernel = 3, stride = 2, padding = 1)",
         lambda t: F.avg_pool2d(t, 3, 2, 1))
    case("avgpool2d", "rect", [("x", x)], "avgpool2d(x, kernel = (2, 3), stride = (1, 2))",
         lambda t: F.avg_pool2d(t, (2, 3), (1, 2)))

    # -- attention on [..., T, D]
    def attn_ref(q, k, v, causal, scale=None):
        scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
        s = (q @ k.transpose(-1, -2)) * scale
        if causal:
            T_, S_ = q.shape[-2], k.shape[-2]
            mask = torch.ones(T_, S_, dtype=torch.bool).tril()
            s = s.masked_fill(~mask, float("-inf"))
        return torch.softmax(s, -1) @ v
    Bb, Hh, T, D = 2, dim(1, 3), dim(3, 9), dim(2, 8)
    q, k, v = fl((Bb, Hh, T, D)), fl((Bb, Hh, T, D)), fl((Bb, Hh, T, D))
    case("attention", "causal", [("q", q), ("k", k), ("v", v)], "attention(q, k, v, causal = true)",
         lambda q_, k_, v_: attn_ref(q_, k_, v_, True))
    case("attention", "full", [("q", q), ("k", k), ("v", v)], "attention(q, k, v, causal = false)",
         lambda q_, k_, v_: attn_ref(q_, k_, v_, False))
    case("attention", "scale", [("q", q), ("k", k), ("v", v)],
         "attention(q, k, v, causal = true, scale = 0.25)",
         lambda q_, k_, v_: attn_ref(q_, k_, v_, True, 0.25))
    S, Dv = T + dim(1, 4), dim(2, 6)
    case("attention", "cross_3d", [("q", fl((3, T, D))), ("k", fl((3, S, D))), ("v", fl((3, S, Dv)))],
         "attention(q, k, v, causal = false)", lambda q_, k_, v_: attn_ref(q_, k_, v_, False))


    # -- integer and u8 dtypes
    m, n = dim(), dim()
    ia, ib = i32((m, n), -50, 50), i32((m, n), 1, 9) * np.where(boolean((m, n)), -1, 1).astype(np.int32)
    case("add", "i32", [("a", ia), ("b", ib)], "a + b", lambda a_, b_: a_ + b_)
    case("mul", "i32_literal", [("a", ia)], "a * 3 - 1", lambda a_: a_ * 3 - 1)
    case("div", "i32_trunc", [("a", ia), ("b", ib)], "a / b",
         lambda a_, b_: torch.div(a_, b_, rounding_mode="trunc"))
    case("lt", "i32", [("a", ia), ("b", ib)], "a < b", torch.lt)
    case("where", "i32", [("c", boolean((m, n))), ("a", ia), ("b", ib)], "where(c, a, b)", torch.where)
    # (sum/max on i32 are valid IR but the c99 target of v0 reduces f32 only: E0910)
    case("cast", "f32_to_u8", [("a", fl((m, n), 0.0, 200.0))], "cast(a, u8)", lambda a_: a_.to(torch.uint8))
    case("cast", "u8_to_f32", [("a", rng.integers(0, 256, size=(m, n)).astype(np.uint8))], "cast(a, f32)",
         lambda a_: a_.to(torch.float32))

    # -- compositions that exercise the passes (fold, cse, dce) and buffer aliasing
    m, k, n = dim(2, 9), dim(2, 17), dim(2, 9)
    case("edge", "identity", [("a", fl((m, n)))], "a", lambda a_: a_.clone())
    case("edge", "reshape_input_out", [("a", fl((m, n)))], "reshape(a, (%d,))" % (m * n),
         lambda a_: a_.reshape(-1))
    case("edge", "transpose_lhs_matmul", [("a", fl((k, m))), ("b", fl((k, n)))], "transpose(a) @ b",
         lambda a_, b_: a_.t() @ b_)
    case("edge", "double_transpose", [("a", fl((m, k))), ("b", fl((k, n)))],
         "a @ transpose(transpose(b))", lambda a_, b_: a_ @ b_)
    case("edge", "cse_same_expr", [("a", fl((m, n)))], "exp(a) * exp(a) + exp(a)",
         lambda a_: torch.exp(a_) * torch.exp(a_) + torch.exp(a_))
    case("edge", "same_input_twice", [("a", fl((m, n)))], "a * a - a", lambda a_: a_ * a_ - a_)
    case("edge", "const_fold", [("a", fl((m, n)))], "a * (S * 4.0) + OFF",
         lambda a_: a_ * 2.0 + 0.25, prelude="const S = 0.5;\nconst OFF = 1.0 / 4.0;\n")
    case("edge", "dead_code", [("a", fl((m, n))), ("b", fl((m, n)))], "relu(a)",
         lambda a_, b_: torch.relu(a_))
    case("edge", "chain_reshape_permute", [("a", fl((2, 3, 4, 5)))],
         "reshape(permute(reshape(a, (6, 4, 5)), (2, 0, 1)), (5, 24))",
         lambda a_: a_.reshape(6, 4, 5).permute(2, 0, 1).reshape(5, 24))
    case("edge", "slice_of_matmul", [("a", fl((m, k))), ("b", fl((k, 9)))],
         "slice(a @ b, axis = 1, start = 3, end = 6) + 1.0", lambda a_, b_: (a_ @ b_)[:, 3:6] + 1.0)
    case("edge", "broadcast_lit_chain", [("a", fl((m, 1))), ("b", fl((n,)))],
         "sigmoid(a * 2.0 - b) / (1.0 + abs(b))",
         lambda a_, b_: torch.sigmoid(a_ * 2.0 - b_) / (1.0 + torch.abs(b_)))

    # -- numerics: large offsets, long reductions, larger problem sizes
    # (a larger offset measures float32 noise: torch f32 itself is 2e-4 off float64 at +1000)
    case("layernorm", "offset_10", [("x", fl((4, 64), -1, 1) + 10.0)], "layernorm(x)",
         lambda t: F.layer_norm(t, (64,), None, None, 1e-5))
    case("log_softmax", "large", [("x", fl((3, 50), 50, 90))], "log_softmax(x)",
         lambda t: torch.log_softmax(t, -1))
    case("sum", "long_100k", [("x", fl((2, 100000), 0.0, 1.0))], "sum(x, axis = 1)", lambda t: t.sum(1))
    case("mean", "long_100k", [("x", fl((2, 100000), 0.0, 1.0))], "mean(x, axis = -1)",
         lambda t: t.mean(-1))
    case("matmul", "gpt_sized", [("a", fl((8, 64, 128), -1, 1)), ("b", fl((384, 128), -1, 1))],
         "matmul(a, b, transpose_b = true)", lambda a_, b_: a_ @ b_.t())
    q, k_, v = fl((2, 4, 64, 32)), fl((2, 4, 64, 32)), fl((2, 4, 64, 32))
    case("attention", "gpt_sized", [("q", q), ("k", k_), ("v", v)], "attention(q, k, v, causal = true)",
         lambda q_, k2, v_: attn_ref(q_, k2, v_, True))
    m, n = dim(), dim()
    case("cast", "f32_to_bool", [("a", ints_f((m, n), -1, 1))], "cast(a, bool)",
         lambda a_: a_.to(torch.bool))
    case("eq", "bool", [("a", boolean((m, n))), ("b", boolean((n,)))], "a == b", torch.eq)

    # -- training ops, used in a forward (builtins usable in any fn)
    Bn, Tn, Vn = 3, dim(2, 6), dim(4, 11)
    logits = fl((Bn, Tn, Vn), -3, 3)
    tg = i32((Bn, Tn), 0, Vn)
    tg_ign = tg.copy()
    tg_ign[0, 0] = -100

    def ce(x_, t_, **kw):
        return F.cross_entropy(x_.reshape(-1, x_.shape[-1]), t_.reshape(-1).long(), **kw)
    case("cross_entropy", "3d", [("x", logits), ("t", tg)], "cross_entropy(x, t)", ce)
    case("cross_entropy", "2d", [("x", logits[0]), ("t", tg[0])], "cross_entropy(x, t)", ce)
    case("cross_entropy", "ignore_default", [("x", logits), ("t", tg_ign)], "cross_entropy(x, t)", ce)
    tg_two = tg.copy()
    tg_two[0, :] = 2 % Vn
    case("cross_entropy", "ignore_smooth", [("x", logits), ("t", tg_two)],
         "cross_entropy(x, t, ignore_index = 2, label_smoothing = 0.1)",
         lambda x_, t_: ce(x_, t_, ignore_index=2, label_smoothing=0.1))
    m, n = dim(), dim()
    case("mse", "basic", [("a", fl((m, n))), ("b", fl((m, n)))], "mse(a, b)", F.mse_loss)
    case("bce_with_logits", "basic", [("x", fl((m, n), -30, 30)), ("y", fl((m, n), 0, 1))],
         "bce_with_logits(x, y)", F.binary_cross_entropy_with_logits)
    case("stop_gradient", "identity", [("a", fl((m, n)))], "stop_gradient(a) * 2.0", lambda t: t * 2.0)


# ---- running one case --------------------------------------------------------------

CKM_DTYPE = {np.dtype(np.float32): "f32", np.dtype(np.int32): "i32", np.dtype(np.bool_): "bool",
             np.dtype(np.uint8): "u8", np.dtype(np.float64): "f64"}
TORCH_TO_NP = {torch.float32: np.float32, torch.int32: np.int32, torch.bool: np.bool_,
               torch.uint8: np.uint8, torch.float64: np.float64}


def ckm_type(arr):
    return "%s[%s]" % (CKM_DTYPE[np.dtype(arr.dtype)], ", ".join(str(d) for d in arr.shape))


def source_of(c, expected):
    params = ", ".join("%s: %s" % (n, ckm_type(a)) for n, a in c["args"])
    return ("// generated by test-suite/parity/ops_parity.py: op %s, case %s\n"
            "%s"
            "model OpTest {\n"
            "  fn forward(%s) -> %s {\n"
            "    return %s;\n"
            "  }\n"
            "}\n" % (c["op"], c["name"], c["prelude"], params, ckm_type(expected), c["expr"]))


def run_case(c, base):
    tag = "op/%s/%s" % (c["op"], c["name"])
    work = os.path.join(base, "%s_%s" % (c["op"], c["name"]))
    os.makedirs(work)
    try:
        src = os.path.join(work, "optest.ckm")
        with open(src, "w") as f:
            f.write(c["source"])
        ins = []
        for i, (_, a) in enumerate(c["args"]):
            p = os.path.join(work, "in%d.npy" % i)
            np.save(p, a)
            ins.append(p)
        proj = H.Project(work, src, "optest")
        w = os.path.join(work, "w.safetensors")
        proj.init(w, 0)
        got = proj.infer(w, ins, os.path.join(work, "out.npy"))
        exp = c["expected"]
        if got.dtype != exp.dtype or got.shape != exp.shape:
            return False, "%s result %s%s, expected %s%s" % (tag, got.dtype, list(got.shape),
                                                             exp.dtype, list(exp.shape))
        if exp.dtype.kind in "biu":
            bad = int(np.count_nonzero(got != exp))
            return bad == 0, "%s mismatches=%d (exact)" % (tag, bad)
        err = H.maxrel(got, exp)
        return err <= TOL, "%s maxrel=%.3g" % (tag, err)
    except H.StepError as e:
        return False, "%s stage=%s %s" % (tag, e.stage, e.detail)
    except Exception as e:  # a harness problem must still be a FAIL line
        return False, "%s harness error %s: %s" % (tag, type(e).__name__, e)
    finally:
        if c.get("keep") is None:
            H.remove_workdir(work)


def main():
    build_cases()
    flt = os.environ.get("CKC_OPS_FILTER", "")
    cases = [c for c in CASES if any(f in "op/%s/%s" % (c["op"], c["name"]) for f in flt.split(","))]
    print("# ops parity: %d cases, tolerance max|a-b|/max(1,|b|) <= %g (exact for int/bool)"
          % (len(cases), TOL), flush=True)
    if not os.path.isfile(H.CKC):
        for c in cases:
            print("FAIL op/%s/%s stage=ckc compiler %s not built" % (c["op"], c["name"], H.CKC))
        return 1
    for c in cases:
        tin = [torch.from_numpy(a.copy()) for _, a in c["args"]]
        r = c["ref"](*tin)
        c["expected"] = np.array(r.detach().numpy(), dtype=TORCH_TO_NP[r.dtype], order="C")
        c["source"] = source_of(c, c["expected"])
    base = H.make_workdir("ckc-ops-")
    jobs = int(os.environ.get("CKC_PARITY_JOBS", "2"))
    failed = 0
    worst = 0.0
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as ex:
        futs = [ex.submit(run_case, c, base) for c in cases]
        for fut in futs:
            ok, line = fut.result()
            print(("PASS " if ok else "FAIL ") + line, flush=True)
            failed += 0 if ok else 1
            if "maxrel=" in line:
                try:
                    worst = max(worst, float(line.rsplit("maxrel=", 1)[1]))
                except ValueError:
                    pass
    H.remove_workdir(base)
    print("# ops parity: %d/%d passed; worst maxrel %.3g" % (len(cases) - failed, len(cases), worst))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
