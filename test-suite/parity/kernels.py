#!/usr/bin/python3
"""test-suite/parity/kernels.py - rt-min reference kernels vs PyTorch (CPU, float32).

Run from the repository root with /usr/bin/python3. Compiles rt-min/ck_kernels.c
(plus kernels_helpers.c, array wrappers of the scalar helpers) into
build/parity/libck_kernels.so with `cc -shared -fPIC -O2 -std=c99`, loads it with
ctypes and compares every kernel on several seeded random shapes against torch.

Tolerance (fixed, not tuned per case): max relative error
    rel = |ours - torch| / max(1, |torch|)  <=  TOL = 1e-5
NaN must match NaN and an infinity the same infinity. Data-movement kernels,
argmax and embedding must match exactly (TOL_EXACT = 0).

Output: one line per case, `PASS kernel/<name>/<case> maxrel=...` or
`FAIL kernel/<name>/<case> maxrel=... (reason)`; exit status 1 if any failed.
A last group, `io/ck_io/...`, checks rt-min/ck_io.c's files against numpy's
np.save/np.load (byte-identical .npy) and a from-the-spec safetensors reader
and writer in Python.
"""
import ctypes
import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F

TOL = 1e-5
TOL_EXACT = 0.0

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(ROOT, "build", "parity")
LIB = os.path.join(BUILD, "libck_kernels.so")

i64 = ctypes.c_int64
fptr = ctypes.POINTER(ctypes.c_float)
vptr = ctypes.c_void_p


def build_lib():
    os.makedirs(BUILD, exist_ok=True)
    cmd = ["cc", "-shared", "-fPIC", "-O2", "-std=c99", "-I" + os.path.join(ROOT, "rt-min"),
           os.path.join(ROOT, "rt-min", "ck_kernels.c"),
           os.path.join(ROOT, "test-suite", "parity", "kernels_helpers.c"),
           "-o", LIB, "-lm"]
    subprocess.run(cmd, check=True)
    lib = ctypes.CDLL(LIB)
    sig = {
        "ck_matmul_f32": [vptr, vptr, vptr, i64, i64, i64, i64, ctypes.c_int, ctypes.c_int, i64, i64],
        "ck_permute": [vptr, vptr, ctypes.c_size_t, ctypes.c_int, vptr, vptr],
        "ck_slice": [vptr, vptr, ctypes.c_size_t, i64, i64, i64, i64, i64, i64],
        "ck_concat_part": [vptr, vptr, ctypes.c_size_t, i64, i64, i64, i64, i64],
        "ck_broadcast": [vptr, vptr, ctypes.c_size_t, ctypes.c_int, vptr, vptr],
        "ck_sum_f32": [vptr, vptr, i64, i64, i64],
        "ck_mean_f32": [vptr, vptr, i64, i64, i64],
        "ck_max_f32": [vptr, vptr, i64, i64, i64],
        "ck_argmax_f32": [vptr, vptr, i64, i64, i64],
        "ck_softmax_f32": [vptr, vptr, i64, i64, i64],
        "ck_log_softmax_f32": [vptr, vptr, i64, i64, i64],
        "ck_layernorm_f32": [vptr, vptr, vptr, vptr, vptr, vptr, i64, i64, ctypes.c_float],
        "ck_rmsnorm_f32": [vptr, vptr, vptr, vptr, i64, i64, ctypes.c_float],
        "ck_embedding_f32": [vptr, vptr, vptr, i64, i64, i64],
        "ck_conv2d_f32": [vptr, vptr, vptr, vptr] + [i64] * 14,
        "ck_maxpool2d_f32": [vptr, vptr] + [i64] * 12,
        "ck_avgpool2d_f32": [vptr, vptr] + [i64] * 12,
        "ck_attention_f32": [vptr, vptr, vptr, vptr, i64, i64, i64, i64, i64, ctypes.c_int,
                             ctypes.c_float, vptr],
        "ckp_map": [ctypes.c_int, vptr, vptr, i64],
    }
    for name, args in sig.items():
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = None
    lib.ck_embedding_f32.restype = i64
    return lib


def p(a):
    """Pointer to a contiguous numpy array (None for None)."""
    if a is None:
        return None
    assert a.flags["C_CONTIGUOUS"]
    return a.ctypes.data


def dims_arr(d):
    return np.ascontiguousarray(np.array(d, dtype=np.int64))


class Report:
    def __init__(self):
        self.failed = 0
        self.passed = 0
        self.worst = {}

    def compare(self, name, case, ours, ref, tol=TOL):
        ours = np.asarray(ours)
        ref = np.asarray(ref)
        reason = None
        maxrel = 0.0
        if ours.shape != ref.shape:
            reason = "shape %s vs torch %s" % (ours.shape, ref.shape)
            maxrel = float("inf")
        elif ours.size:
            a = ours.astype(np.float64)
            b = ref.astype(np.float64)
            nan_a, nan_b = np.isnan(a), np.isnan(b)
            inf_a, inf_b = np.isinf(a), np.isinf(b)
            if (nan_a != nan_b).any():
                reason = "NaN pattern differs"
                maxrel = float("inf")
            elif (inf_a != inf_b).any() or (a[inf_a] != b[inf_b]).any():
                reason = "infinity pattern differs"
                maxrel = float("inf")
            else:
                fin = ~(nan_a | inf_a)
                if fin.any():
                    rel = np.abs(a[fin] - b[fin]) / np.maximum(1.0, np.abs(b[fin]))
                    maxrel = float(rel.max())
                if maxrel > tol:
                    reason = "exceeds tolerance %g" % tol
        key = "kernel/%s" % name
        self.worst[key] = max(self.worst.get(key, 0.0), maxrel)
        if reason:
            self.failed += 1
            print("FAIL kernel/%s/%s maxrel=%.3g (%s)" % (name, case, maxrel, reason))
        else:
            self.passed += 1
            print("PASS kernel/%s/%s maxrel=%.3g" % (name, case, maxrel))

    def check(self, name, case, ok, detail="", group="kernel"):
        if ok:
            self.passed += 1
            print("PASS %s/%s/%s" % (group, name, case))
        else:
            self.failed += 1
            print("FAIL %s/%s/%s %s" % (group, name, case, detail))


def f32(rng, *shape, scale=1.0):
    return np.ascontiguousarray((rng.standard_normal(shape) * scale).astype(np.float32))


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


# ---- linear algebra ---------------------------------------------------------------------

def test_matmul(lib, R, rng):
    shapes = [(7, 5, 9), (1, 13, 32), (16, 16, 64), (3, 1, 1), (33, 17, 128)]
    for (M, N, K) in shapes:
        for ta in (0, 1):
            for tb in (0, 1):
                for mode in ("single", "batched", "bcast_a", "bcast_b"):
                    batch = 1 if mode == "single" else 3
                    A = f32(rng, 1 if mode == "bcast_a" else batch, M, K)
                    B = f32(rng, 1 if mode == "bcast_b" else batch, K, N)
                    As = np.ascontiguousarray(A.transpose(0, 2, 1)) if ta else A
                    Bs = np.ascontiguousarray(B.transpose(0, 2, 1)) if tb else B
                    out = np.zeros((batch, M, N), np.float32)
                    lib.ck_matmul_f32(p(out), p(As), p(Bs), batch, M, N, K, ta, tb,
                                      0 if mode == "bcast_a" else M * K,
                                      0 if mode == "bcast_b" else K * N)
                    ref = torch.matmul(t(A), t(B)).numpy()
                    R.compare("matmul", "%dx%dx%d_ta%d_tb%d_%s" % (M, N, K, ta, tb, mode), out, ref)


# ---- data movement ----------------------------------------------------------------------

DTYPES = [np.float32, np.float64, np.int32, np.uint8]


def rand_any(rng, shape, dt):
    if dt in (np.float32, np.float64):
        return np.ascontiguousarray(rng.standard_normal(shape).astype(dt))
    return np.ascontiguousarray(rng.integers(0, 200, size=shape).astype(dt))


def test_permute(lib, R, rng):
    for case in range(12):
        rank = int(rng.integers(0, 6)) if case else 0
        dims = [int(d) for d in rng.integers(1, 6, size=rank)]
        if case == 5 and rank > 0:
            dims[0] = 0  # empty tensor
        perm = [int(v) for v in rng.permutation(rank)]
        dt = DTYPES[case % len(DTYPES)]
        x = rand_any(rng, dims, dt)
        ref = t(x).permute(*perm).contiguous().numpy() if rank else x.copy()
        out = np.zeros(ref.shape, dt)
        d_arr, p_arr = dims_arr(dims or [1]), dims_arr(perm or [0])  # kept alive over the call
        lib.ck_permute(p(out), p(x), x.itemsize, rank, p(d_arr), p(p_arr))
        R.compare("permute", "r%d_%s_%s_%s" % (rank, "x".join(map(str, dims)) or "scalar",
                                               "".join(map(str, perm)) or "-", np.dtype(dt).name),
                  out, ref, TOL_EXACT)


def test_slice(lib, R, rng):
    for case in range(8):
        outer, n, inner = (int(v) for v in rng.integers(1, 6, size=3))
        n += 6
        step = int(rng.integers(1, 4))
        start = int(rng.integers(0, n))
        count = len(range(start, n, step))
        dt = DTYPES[case % len(DTYPES)]
        x = rand_any(rng, (outer, n, inner), dt)
        ref = t(x)[:, start:start + count * step:step, :].contiguous().numpy()
        out = np.zeros(ref.shape, dt)
        lib.ck_slice(p(out), p(x), x.itemsize, outer, n, inner, start, step, count)
        R.compare("slice", "%dx%dx%d_s%d_st%d_%s" % (outer, n, inner, start, step, np.dtype(dt).name),
                  out, ref, TOL_EXACT)


def test_concat(lib, R, rng):
    for case in range(6):
        outer, inner = (int(v) for v in rng.integers(1, 5, size=2))
        parts_n = [int(v) for v in rng.integers(0 if case == 3 else 1, 5, size=int(rng.integers(1, 4)))]
        dt = DTYPES[case % len(DTYPES)]
        xs = [rand_any(rng, (outer, k, inner), dt) for k in parts_n]
        ref = torch.cat([t(a) for a in xs], dim=1).numpy()
        out = np.zeros(ref.shape, dt)
        off = 0
        for a, k in zip(xs, parts_n):
            lib.ck_concat_part(p(out), p(a), a.itemsize, outer, k, sum(parts_n), off, inner)
            off += k
        R.compare("concat", "%d_parts_%s_%s" % (len(xs), "+".join(map(str, parts_n)), np.dtype(dt).name),
                  out, ref, TOL_EXACT)


def test_broadcast(lib, R, rng):
    for case in range(10):
        rank = int(rng.integers(1, 6))
        out_dims = [int(d) for d in rng.integers(1, 5, size=rank)]
        in_dims = [d if rng.random() < 0.5 else 1 for d in out_dims]
        dt = DTYPES[case % len(DTYPES)]
        x = rand_any(rng, in_dims, dt)
        ref = torch.broadcast_to(t(x), out_dims).contiguous().numpy()
        out = np.zeros(ref.shape, dt)
        in_arr, out_arr = dims_arr(in_dims), dims_arr(out_dims)  # kept alive over the call
        lib.ck_broadcast(p(out), p(x), x.itemsize, rank, p(in_arr), p(out_arr))
        R.compare("broadcast", "%s_to_%s_%s" % ("x".join(map(str, in_dims)), "x".join(map(str, out_dims)),
                                                np.dtype(dt).name), out, ref, TOL_EXACT)


# ---- reductions ---------------------------------------------------------------------------

RED_SHAPES = [(1, 10, 1), (4, 7, 3), (2, 100, 5), (3, 1, 4), (1, 1000, 1)]


def test_reductions(lib, R, rng):
    for (o, n, i) in RED_SHAPES:
        x = f32(rng, o, n, i)
        case = "%dx%dx%d" % (o, n, i)
        for name, fn, ref in (("sum", lib.ck_sum_f32, lambda a: a.sum(1)),
                              ("mean", lib.ck_mean_f32, lambda a: a.mean(1)),
                              ("max", lib.ck_max_f32, lambda a: a.max(1).values)):
            out = np.zeros((o, i), np.float32)
            fn(p(out), p(x), o, n, i)
            R.compare(name, case, out, ref(t(x)).numpy())
        out = np.zeros((o, i), np.int32)
        lib.ck_argmax_f32(p(out), p(x), o, n, i)
        R.compare("argmax", case, out, t(x).argmax(1).numpy(), TOL_EXACT)
    # ties: small integers make many equal maxima; torch returns the first
    x = np.ascontiguousarray(rng.integers(0, 3, size=(5, 9, 4)).astype(np.float32))
    out = np.zeros((5, 4), np.int32)
    lib.ck_argmax_f32(p(out), p(x), 5, 9, 4)
    R.compare("argmax", "ties_first_index", out, t(x).argmax(1).numpy(), TOL_EXACT)
    # NaN wins in max and argmax
    x = f32(rng, 3, 6, 2)
    x[0, 4, 1] = np.nan
    x[2, 0, 0] = np.nan
    x[2, 3, 0] = np.nan
    out = np.zeros((3, 2), np.float32)
    lib.ck_max_f32(p(out), p(x), 3, 6, 2)
    R.compare("max", "nan_propagates", out, t(x).max(1).values.numpy())
    outi = np.zeros((3, 2), np.int32)
    lib.ck_argmax_f32(p(outi), p(x), 3, 6, 2)
    R.compare("argmax", "nan_wins", outi, t(x).argmax(1).numpy(), TOL_EXACT)


# ---- softmax family -------------------------------------------------------------------------

def test_softmax(lib, R, rng):
    for (o, n, i) in RED_SHAPES + [(2, 50, 3)]:
        for scale in (1.0, 50.0):
            x = f32(rng, o, n, i, scale=scale)
            case = "%dx%dx%d_scale%g" % (o, n, i, scale)
            out = np.zeros_like(x)
            lib.ck_softmax_f32(p(out), p(x), o, n, i)
            R.compare("softmax", case, out, torch.softmax(t(x), 1).numpy())
            out = np.zeros_like(x)
            lib.ck_log_softmax_f32(p(out), p(x), o, n, i)
            R.compare("log_softmax", case, out, torch.log_softmax(t(x), 1).numpy())
    # large offsets: a naive exp would overflow
    x = f32(rng, 2, 8, 1) + np.float32(1000.0)
    out = np.zeros_like(x)
    lib.ck_softmax_f32(p(out), p(x), 2, 8, 1)
    R.compare("softmax", "offset1000", out, torch.softmax(t(x), 1).numpy())
    out = np.zeros_like(x)
    lib.ck_log_softmax_f32(p(out), p(x), 2, 8, 1)
    R.compare("log_softmax", "offset1000", out, torch.log_softmax(t(x), 1).numpy())


# ---- normalisation ----------------------------------------------------------------------------

def test_layernorm(lib, R, rng):
    for (rows, n) in [(1, 8), (6, 32), (17, 128), (4, 768)]:
        for affine in ("wb", "w", "none"):
            shift = float(rng.integers(-5, 5))
            x = f32(rng, rows, n) + np.float32(shift)
            w = f32(rng, n) if affine != "none" else None
            b = f32(rng, n) if affine == "wb" else None
            eps = 1e-5
            out = np.zeros_like(x)
            mean = np.zeros(rows, np.float32)
            rstd = np.zeros(rows, np.float32)
            lib.ck_layernorm_f32(p(out), p(mean), p(rstd), p(x), p(w), p(b), rows, n, eps)
            ref, rmean, rrstd = torch.native_layer_norm(
                t(x), [n], None if w is None else t(w), None if b is None else t(b), eps)
            case = "%dx%d_%s" % (rows, n, affine)
            R.compare("layernorm", case, out, ref.numpy())
            R.compare("layernorm", case + "_mean", mean, rmean.reshape(rows).numpy())
            R.compare("layernorm", case + "_rstd", rstd, rrstd.reshape(rows).numpy())
    # mean/rstd are optional (NULL)
    x = f32(rng, 3, 16)
    out = np.zeros_like(x)
    lib.ck_layernorm_f32(p(out), None, None, p(x), None, None, 3, 16, 1e-5)
    R.compare("layernorm", "3x16_no_saved_stats", out, F.layer_norm(t(x), [16]).numpy())


def test_rmsnorm(lib, R, rng):
    for (rows, n) in [(1, 8), (6, 32), (17, 128), (4, 768)]:
        for with_w in (True, False):
            x = f32(rng, rows, n, scale=3.0)
            w = f32(rng, n) if with_w else None
            eps = 1e-5
            out = np.zeros_like(x)
            rstd = np.zeros(rows, np.float32)
            lib.ck_rmsnorm_f32(p(out), p(rstd), p(x), p(w), rows, n, eps)
            xd = t(x).double()
            rr = torch.rsqrt(xd.pow(2).mean(-1, keepdim=True) + eps)
            ref = xd * rr * (t(w).double() if with_w else 1.0)
            case = "%dx%d_%s" % (rows, n, "w" if with_w else "now")
            R.compare("rmsnorm", case, out, ref.float().numpy())
            R.compare("rmsnorm", case + "_rstd", rstd, rr.reshape(rows).float().numpy())


def test_embedding(lib, R, rng):
    for (n_idx, V, C) in [(1, 1, 4), (10, 7, 3), (64, 256, 32)]:
        table = f32(rng, V, C)
        idx = np.ascontiguousarray(rng.integers(0, V, size=n_idx).astype(np.int32))
        out = np.zeros((n_idx, C), np.float32)
        ret = lib.ck_embedding_f32(p(out), p(table), p(idx), n_idx, V, C)
        R.check("embedding", "%d_of_%dx%d_ret" % (n_idx, V, C), ret == -1, "returned %d" % ret)
        ref = F.embedding(t(idx).long(), t(table)).numpy()
        R.compare("embedding", "%d_of_%dx%d" % (n_idx, V, C), out, ref, TOL_EXACT)
    table = f32(rng, 5, 2)
    for bad, pos in ((5, 3), (-1, 0), (2147483647, 6)):
        idx = np.array([1, 2, 3, 4, 0, 1, 2, 3], np.int32)
        idx[pos] = bad
        if pos != 0:
            idx[pos + 1] = 5  # a later bad index must not be the one reported
        out = np.full((8, 2), 7.0, np.float32)
        ret = lib.ck_embedding_f32(p(out), p(table), p(idx), 8, 5, 2)
        R.check("embedding", "out_of_range_%d_at_%d" % (bad, pos), ret == pos,
                "returned %d, expected %d" % (ret, pos))


# ---- convolution and pooling ------------------------------------------------------------------

def test_conv2d(lib, R, rng):
    configs = [  # N, C, H, W, OC, KH, KW, sh, sw, ph, pw, groups, bias
        (1, 1, 5, 5, 1, 3, 3, 1, 1, 0, 0, 1, True),
        (2, 3, 8, 7, 4, 3, 3, 1, 1, 1, 1, 1, True),
        (2, 4, 9, 9, 6, 3, 2, 2, 1, 1, 0, 2, False),
        (1, 8, 10, 10, 8, 3, 3, 1, 1, 1, 1, 8, True),   # depthwise
        (1, 6, 12, 11, 12, 5, 5, 2, 3, 2, 2, 3, True),
        (3, 1, 28, 28, 8, 5, 5, 1, 1, 2, 2, 1, True),
        (1, 4, 6, 6, 8, 1, 1, 1, 1, 0, 0, 4, False),    # depthwise multiplier 2, 1x1
    ]
    for (N, C, H, W, OC, KH, KW, sh, sw, ph, pw, g, has_b) in configs:
        x = f32(rng, N, C, H, W)
        w = f32(rng, OC, C // g, KH, KW)
        b = f32(rng, OC) if has_b else None
        ref = F.conv2d(t(x), t(w), None if b is None else t(b), stride=(sh, sw), padding=(ph, pw),
                       groups=g).numpy()
        OH, OW = ref.shape[2], ref.shape[3]
        out = np.zeros(ref.shape, np.float32)
        lib.ck_conv2d_f32(p(out), p(x), p(w), p(b), N, C, H, W, OC, KH, KW, sh, sw, ph, pw, g, OH, OW)
        R.compare("conv2d", "n%d_c%d_%dx%d_oc%d_k%dx%d_s%d%d_p%d%d_g%d%s" %
                  (N, C, H, W, OC, KH, KW, sh, sw, ph, pw, g, "_b" if has_b else ""), out, ref)


def test_pool(lib, R, rng):
    configs = [  # N, C, H, W, KH, KW, sh, sw, ph, pw
        (1, 1, 4, 4, 2, 2, 2, 2, 0, 0),
        (2, 3, 7, 9, 3, 3, 2, 2, 1, 1),
        (1, 2, 8, 8, 3, 2, 1, 2, 1, 0),
        (2, 4, 28, 28, 2, 2, 2, 2, 0, 0),
        (1, 1, 5, 6, 4, 4, 3, 3, 2, 2),
    ]
    for (N, C, H, W, KH, KW, sh, sw, ph, pw) in configs:
        x = f32(rng, N, C, H, W)
        case = "n%d_c%d_%dx%d_k%dx%d_s%d%d_p%d%d" % (N, C, H, W, KH, KW, sh, sw, ph, pw)
        ref = F.max_pool2d(t(x), (KH, KW), (sh, sw), (ph, pw)).numpy()
        OH, OW = ref.shape[2], ref.shape[3]
        out = np.zeros(ref.shape, np.float32)
        lib.ck_maxpool2d_f32(p(out), p(x), N, C, H, W, KH, KW, sh, sw, ph, pw, OH, OW)
        R.compare("maxpool2d", case, out, ref)
        ref = F.avg_pool2d(t(x), (KH, KW), (sh, sw), (ph, pw), count_include_pad=True).numpy()
        out = np.zeros(ref.shape, np.float32)
        lib.ck_avgpool2d_f32(p(out), p(x), N, C, H, W, KH, KW, sh, sw, ph, pw, OH, OW)
        R.compare("avgpool2d", case, out, ref)


# ---- attention ------------------------------------------------------------------------------------

def attention_ref(q, k, v, causal, scale):
    """softmax(q k^T * scale + mask) v in torch (1.13 has no SDPA). The mask is
    the header's: query i sees keys j <= i + max(0, S - T); for S == T that is
    exactly PyTorch's is_causal (lower-triangular) mask."""
    T, S = q.shape[1], k.shape[1]
    sc = torch.matmul(q, k.transpose(1, 2)) * scale
    if causal:
        off = max(0, S - T)
        i = torch.arange(T).unsqueeze(1)
        j = torch.arange(S).unsqueeze(0)
        sc = sc.masked_fill(j > i + off, float("-inf"))
    return torch.matmul(torch.softmax(sc, -1), v)


def test_attention(lib, R, rng):
    configs = [  # batch, T, S, D, Dv, causal
        (1, 1, 1, 4, 4, 1),
        (2, 8, 8, 16, 16, 1),
        (3, 16, 16, 32, 8, 1),
        (2, 8, 8, 16, 16, 0),
        (2, 5, 11, 8, 6, 0),
        (1, 12, 7, 16, 16, 0),
        (2, 4, 9, 8, 8, 1),  # S > T: bottom-right aligned causal (header)
    ]
    for (batch, T, S, D, Dv, causal) in configs:
        q, k, v = f32(rng, batch, T, D), f32(rng, batch, S, D), f32(rng, batch, S, Dv)
        scale = 1.0 / np.sqrt(D)
        out = np.zeros((batch, T, Dv), np.float32)
        scratch = np.zeros(S, np.float32)
        lib.ck_attention_f32(p(out), p(q), p(k), p(v), batch, T, S, D, Dv, causal, scale, p(scratch))
        ref = attention_ref(t(q), t(k), t(v), causal, float(np.float32(scale))).numpy()
        R.compare("attention", "b%d_T%d_S%d_D%d_Dv%d_%s" % (batch, T, S, D, Dv,
                                                          "causal" if causal else "full"), out, ref)
    # custom scale and a large score range (max subtraction matters)
    q, k, v = f32(rng, 1, 6, 8, scale=10.0), f32(rng, 1, 6, 8, scale=10.0), f32(rng, 1, 6, 8)
    out = np.zeros((1, 6, 8), np.float32)
    scratch = np.zeros(6, np.float32)
    lib.ck_attention_f32(p(out), p(q), p(k), p(v), 1, 6, 6, 8, 8, 1, 0.5, p(scratch))
    R.compare("attention", "large_scores_scale0.5", out,
              attention_ref(t(q), t(k), t(v), True, 0.5).numpy())


# ---- scalar helpers -------------------------------------------------------------------------------

def test_scalars(lib, R, rng):
    base = np.concatenate([np.linspace(-12, 12, 4001), rng.standard_normal(4000) * 3,
                           [0.0, -0.0, 1e-30, -1e-30, 88.0, -88.0, 100.0, -100.0, 1e30, -1e30]])
    x = np.ascontiguousarray(base.astype(np.float32))
    xp = np.ascontiguousarray(np.concatenate([np.abs(x[np.abs(x) > 0]), [1e-38, 1e38, 0.0]]).astype(np.float32))
    cases = [
        (0, "sigmoid", x, lambda a: torch.sigmoid(a)),
        (1, "relu", x, lambda a: torch.relu(a)),
        (2, "gelu_erf", x, lambda a: F.gelu(a)),
        (3, "gelu_tanh", x, lambda a: F.gelu(a, approximate="tanh")),
        (4, "silu", x, lambda a: F.silu(a)),
        (5, "rsqrt", xp, lambda a: torch.rsqrt(a)),
    ]
    for which, name, inp, ref in cases:
        out = np.zeros_like(inp)
        lib.ckp_map(which, p(out), p(inp), inp.size)
        R.compare(name, "grid_%d" % inp.size, out, ref(t(inp)).numpy())
    # NaN propagation
    nan = np.array([np.nan, 1.0], np.float32)
    for which, name, _, ref in cases:
        out = np.zeros_like(nan)
        lib.ckp_map(which, p(out), p(nan), 2)
        R.compare(name, "nan", out, ref(t(nan)).numpy())


# ---- file formats: rt-min/ck_io.c against numpy and the safetensors layout -------------------

class Spec(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_int), ("rank", ctypes.c_int),
                ("dims", ctypes.c_int64 * 8), ("data", ctypes.c_void_p)]


class IoErr(ctypes.Structure):
    _fields_ = [("msg", ctypes.c_char * 512)]


IO_DTYPES = [(0, np.float32, "F32"), (1, np.float64, "F64"), (2, np.int32, "I32"),
             (3, np.uint8, "U8"), (4, np.bool_, "BOOL")]


def build_io():
    lib_io = os.path.join(BUILD, "libck_io.so")
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-std=c99", os.path.join(ROOT, "rt-min", "ck_io.c"),
                    "-o", lib_io], check=True)
    lib = ctypes.CDLL(lib_io)
    lib.ck_npy_read.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, vptr, vptr, ctypes.POINTER(IoErr)]
    lib.ck_npy_write.argtypes = lib.ck_npy_read.argtypes
    lib.ck_safetensors_read.argtypes = [ctypes.c_char_p, ctypes.POINTER(Spec), ctypes.c_int,
                                        ctypes.POINTER(IoErr)]
    lib.ck_safetensors_write.argtypes = lib.ck_safetensors_read.argtypes
    return lib


def test_io(R, rng):
    import json
    import struct
    import tempfile
    lib = build_io()
    d = tempfile.mkdtemp(prefix="ck_parity_io_")
    e = IoErr()
    shapes = [(), (5,), (3, 4), (2, 0, 3), (2, 3, 4, 5)]
    for code, dt, _ in IO_DTYPES:
        for shp in shapes:
            x = np.array(rng.standard_normal(shp) * 100, dtype=dt, order="C")  # keeps 0-d
            dims = dims_arr(list(shp) or [0])
            case = "%s_%s" % (np.dtype(dt).name, "x".join(map(str, shp)) or "scalar")
            path = os.path.join(d, "a.npy")
            np.save(path, x)
            out = np.zeros(shp, dt)
            rc = lib.ck_npy_read(path.encode(), code, len(shp), p(dims), p(out), ctypes.byref(e))
            R.check("ck_io", "npy_numpy_to_ck_" + case, rc == 0 and np.array_equal(out, x), e.msg.decode(), "io")
            path2 = os.path.join(d, "b.npy")
            rc = lib.ck_npy_write(path2.encode(), code, len(shp), p(dims), p(x), ctypes.byref(e))
            same = rc == 0 and open(path, "rb").read() == open(path2, "rb").read()
            y = np.load(path2) if rc == 0 else None
            R.check("ck_io", "npy_ck_to_numpy_" + case, same and y.dtype == x.dtype and np.array_equal(y, x),
                    e.msg.decode(), "io")
    # safetensors: ours parsed by a from-the-spec Python reader, and the reverse
    tensors = [("blocks.0.w", IO_DTYPES[0], (3, 4)), ("b", IO_DTYPES[1], (2,)), ("idx", IO_DTYPES[2], (2, 2)),
               ("u", IO_DTYPES[3], (5,)), ("mask", IO_DTYPES[4], (3,)), ("s", IO_DTYPES[0], ())]
    arrays = [np.array(rng.standard_normal(shp) * 10, dtype=dt, order="C") for _, (_, dt, _), shp in tensors]
    specs = (Spec * len(tensors))()
    for k, ((name, (code, _, _), shp), a) in enumerate(zip(tensors, arrays)):
        specs[k].name = name.encode()
        specs[k].dtype = code
        specs[k].rank = len(shp)
        for j, v in enumerate(shp):
            specs[k].dims[j] = v
        specs[k].data = a.ctypes.data
    path = os.path.join(d, "w.safetensors")
    rc = lib.ck_safetensors_write(path.encode(), specs, len(tensors), ctypes.byref(e))
    blob = open(path, "rb").read()
    n = struct.unpack("<Q", blob[:8])[0]
    hdr = json.loads(blob[8:8 + n])
    ok = rc == 0 and n % 8 == 0 and hdr.get("__metadata__") == {"format": "pt"}
    for (name, (_, dt, st), shp), a in zip(tensors, arrays):
        ent = hdr.get(name, {})
        b0, b1 = ent.get("data_offsets", [0, 0])
        got = np.frombuffer(blob[8 + n + b0:8 + n + b1], dtype=dt).reshape(shp)
        ok = ok and ent.get("dtype") == st and tuple(ent.get("shape", [])) == shp and np.array_equal(got, a)
    R.check("ck_io", "safetensors_ck_to_python", ok, e.msg.decode(), "io")
    # the reverse: a Python writer in the reference layout (sorted keys, padded header)
    header, data, off = {}, b"", 0
    for (name, (_, dt, st), shp), a in sorted(zip(tensors, arrays), key=lambda z: z[0][0]):
        raw = a.tobytes()
        header[name] = {"dtype": st, "shape": list(shp), "data_offsets": [off, off + len(raw)]}
        data += raw
        off += len(raw)
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    open(path, "wb").write(struct.pack("<Q", len(hj)) + hj + data)
    outs = [np.zeros(shp, dt) for _, (_, dt, _), shp in tensors]
    for k, o in enumerate(outs):
        specs[k].data = o.ctypes.data
    rc = lib.ck_safetensors_read(path.encode(), specs, len(tensors), ctypes.byref(e))
    R.check("ck_io", "safetensors_python_to_ck",
            rc == 0 and all(np.array_equal(o, a) for o, a in zip(outs, arrays)), e.msg.decode(), "io")
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    os.rmdir(d)


def main():
    lib = build_lib()
    rng = np.random.default_rng(20240611)
    torch.manual_seed(0)
    R = Report()
    print("# tolerance: rel = |ours - torch| / max(1, |torch|) <= %g (exact for data movement)" % TOL)
    for test in (test_matmul, test_permute, test_slice, test_concat, test_broadcast, test_reductions,
                 test_softmax, test_layernorm, test_rmsnorm, test_embedding, test_conv2d, test_pool,
                 test_attention, test_scalars):
        test(lib, R, rng)
    test_io(R, rng)
    for key in sorted(R.worst):
        print("# max observed %-24s %.3g" % (key, R.worst[key]))
    print("# kernels: %d passed, %d failed" % (R.passed, R.failed))
    return 1 if R.failed else 0


if __name__ == "__main__":
    sys.exit(main())
