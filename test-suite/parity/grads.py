#!/usr/bin/python3
"""test-suite/parity/grads.py - rt-min training kernels vs PyTorch autograd and torch.optim.

Run from the repository root with /usr/bin/python3. Compiles rt-min/ck_kernels.c,
ck_grad.c and ck_optim.c into build/libck_train.so (`cc -shared -fPIC -O2 -std=c99`),
loads it with ctypes and checks, on seeded random shapes:

  grad/<kernel>/<case>    our float32 backward vs torch float32 autograd
                          rel = |ours - torch| / max(1, |torch|) <= TOL = 1e-5
  grad64/<kernel>/<case>  the same float32 kernel vs torch float64 autograd on the same
                          (float32-valued) inputs, rel <= TOL64 = 1e-4: checks the backward
                          formulas themselves, not only agreement with float32 rounding
  loss/<loss>/<case>      loss values, rel <= 1e-5 (and NaN where torch gives NaN)
  optim/<config>/<case>   10 steps vs torch.optim (foreach=False): parameters
                          rel = |ours - torch| / max(1, |torch|) <= 1e-6 after every step;
                          optimizer state (exp_avg, exp_avg_sq, momentum_buffer) scaled by
                          the state tensor's largest magnitude, <= 1e-6
  clip/...                ck_grad_sq_norm_f32 + ck_clip_coef + ck_scale_f32 vs
                          torch.nn.utils.clip_grad_norm_, rel <= 1e-6
  sched/...               schedules vs nanoGPT's get_lr transcribed here (rel <= 1e-12) and
                          torch.optim.lr_scheduler StepLR / CosineAnnealingLR (rel <= 1e-10)

Every gradient buffer is pre-filled with random values and every kernel is expected
to ACCUMULATE, so each comparison is against prefill + torch's gradient. Every kernel
call is made twice from identical buffers and the results must be bitwise equal
(deterministic). Out-of-range indices/targets must be reported by position with
the buffers left untouched.

Output: `PASS <group>/<kernel>/<case> maxrel=...` or `FAIL ...`; exit 1 on any failure.
"""
import ctypes
import math
import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F

TOL = 1e-5
TOL64 = 1e-4
TOL_OPT = 1e-6
TOL_SCHED_FORMULA = 1e-12
TOL_SCHED_TORCH = 1e-10
OPT_STEPS = 10

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(ROOT, "build")
LIB = os.path.join(BUILD, "libck_train.so")

i64 = ctypes.c_int64
i32 = ctypes.c_int32
f32c = ctypes.c_float
f64c = ctypes.c_double
vptr = ctypes.c_void_p
cint = ctypes.c_int


def build_lib():
    os.makedirs(BUILD, exist_ok=True)
    rt = os.path.join(ROOT, "rt-min")
    cmd = ["cc", "-shared", "-fPIC", "-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-I" + rt,
           os.path.join(rt, "ck_kernels.c"), os.path.join(rt, "ck_grad.c"), os.path.join(rt, "ck_optim.c"),
           "-o", LIB, "-lm"]
    subprocess.run(cmd, check=True)
    lib = ctypes.CDLL(LIB)
    sig = {
        # forward kernels (saved statistics / outputs the backward kernels consume)
        "ck_softmax_f32": (None, [vptr, vptr, i64, i64, i64]),
        "ck_log_softmax_f32": (None, [vptr, vptr, i64, i64, i64]),
        "ck_layernorm_f32": (None, [vptr, vptr, vptr, vptr, vptr, vptr, i64, i64, f32c]),
        "ck_rmsnorm_f32": (None, [vptr, vptr, vptr, vptr, i64, i64, f32c]),
        # backward kernels
        "ck_softmax_backward_f32": (None, [vptr, vptr, vptr, i64, i64, i64]),
        "ck_log_softmax_backward_f32": (None, [vptr, vptr, vptr, i64, i64, i64]),
        "ck_max_backward_f32": (None, [vptr, vptr, vptr, i64, i64, i64]),
        "ck_layernorm_backward_f32": (None, [vptr] * 8 + [i64, i64]),
        "ck_rmsnorm_backward_f32": (None, [vptr] * 6 + [i64, i64]),
        "ck_embedding_backward_f32": (i64, [vptr, vptr, vptr, i64, i64, i64]),
        "ck_conv2d_backward_f32": (None, [vptr] * 6 + [i64] * 14),
        "ck_maxpool2d_backward_f32": (None, [vptr, vptr, vptr] + [i64] * 12),
        "ck_avgpool2d_backward_f32": (None, [vptr, vptr] + [i64] * 12),
        "ck_attention_backward_f32": (None, [vptr] * 7 + [i64] * 5 + [cint, f32c, vptr]),
        # losses
        "ck_cross_entropy_f32": (i64, [vptr, vptr, vptr, i64, i64, i32, f32c]),
        "ck_cross_entropy_backward_f32": (i64, [vptr, vptr, vptr, vptr, i64, i64, i32, f32c]),
        "ck_mse_f32": (None, [vptr, vptr, vptr, i64]),
        "ck_mse_backward_f32": (None, [vptr, vptr, vptr, vptr, vptr, i64]),
        "ck_bce_with_logits_f32": (None, [vptr, vptr, vptr, i64]),
        "ck_bce_with_logits_backward_f32": (None, [vptr, vptr, vptr, vptr, vptr, i64]),
        # optimizers, clipping, schedules
        "ck_sgd_update_f32": (None, [vptr, vptr, vptr, i64, f64c, f64c, f64c, f64c, cint, cint]),
        "ck_adam_update_f32": (None, [vptr, vptr, vptr, vptr, i64, f64c, f64c, f64c, f64c, f64c, i64, cint]),
        "ck_grad_sq_norm_f32": (f64c, [vptr, i64]),
        "ck_clip_coef": (f64c, [f64c, f64c]),
        "ck_scale_f32": (None, [vptr, i64, f32c]),
        "ck_lr_constant": (f64c, [f64c, i64]),
        "ck_lr_linear_warmup": (f64c, [f64c, i64, i64]),
        "ck_lr_cosine": (f64c, [f64c, f64c, i64, i64, i64]),
        "ck_lr_step": (f64c, [f64c, i64, i64, f64c]),
        "ck_lr_linear": (f64c, [f64c, f64c, i64, i64, i64]),
    }
    for name, (res, args) in sig.items():
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = res
    return lib


def p(a):
    """Pointer to a contiguous numpy array (None for None)."""
    if a is None:
        return None
    assert a.flags["C_CONTIGUOUS"]
    return a.ctypes.data


def f32(rng, *shape, scale=1.0):
    return np.ascontiguousarray((rng.standard_normal(shape) * scale).astype(np.float32))


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def rel_err(ours, ref):
    """Max of |a - b| / max(1, |b|); inf when shapes or NaN/inf patterns differ."""
    a = np.asarray(ours, dtype=np.float64)
    b = np.asarray(ref, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf"), "shape %s vs %s" % (a.shape, b.shape)
    if a.size == 0:
        return 0.0, None
    if (np.isnan(a) != np.isnan(b)).any():
        return float("inf"), "NaN pattern differs"
    fin = np.isfinite(b)
    if (np.isinf(a) != np.isinf(b)).any() or (a[np.isinf(b)] != b[np.isinf(b)]).any():
        return float("inf"), "infinity pattern differs"
    if not fin.any():
        return 0.0, None
    return float((np.abs(a[fin] - b[fin]) / np.maximum(1.0, np.abs(b[fin]))).max()), None


class Report:
    def __init__(self):
        self.failed = 0
        self.passed = 0
        self.worst = {}

    def line(self, ok, name, maxrel, why=None):
        group = name.rsplit("/", 1)[0]
        if maxrel == maxrel:
            self.worst[group] = max(self.worst.get(group, 0.0), maxrel)
        if ok:
            self.passed += 1
            print("PASS %s maxrel=%.3g" % (name, maxrel))
        else:
            self.failed += 1
            print("FAIL %s maxrel=%.3g (%s)" % (name, maxrel, why))

    def compare(self, name, ours, ref, tol, extra_fail=None):
        """ours/ref: lists of arrays compared pairwise; the case's maxrel is the max."""
        worst, why = 0.0, None
        for o, r in zip(ours, ref):
            e, w = rel_err(o, r)
            if w and not why:
                why = w
            worst = max(worst, e)
        if not why and worst > tol:
            why = "exceeds tolerance %g" % tol
        if not why and extra_fail:
            why = extra_fail
        self.line(why is None, name, worst, why)

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print("PASS %s" % name)
        else:
            self.failed += 1
            print("FAIL %s %s" % (name, detail))


def run_accumulating(call, prefills):
    """Runs call(bufs) twice, each time on fresh copies of the prefilled gradient
    buffers (None stays None). Returns (bufs of the first run, deterministic?)."""
    runs = []
    for _ in range(2):
        bufs = [None if b is None else b.copy() for b in prefills]
        call(bufs)
        runs.append(bufs)
    same = all((a is None and b is None) or (a.tobytes() == b.tobytes()) for a, b in zip(*runs))
    return runs[0], same


def grad_case(R, kernel, case, prefills, bufs, same, ref32, ref64):
    """Compares accumulated gradients (prefill + torch grad) at float32 and float64 precision.
    prefills/bufs/ref32/ref64 are parallel lists; None entries are skipped."""
    ours, r32, r64 = [], [], []
    for pre, b, g32, g64 in zip(prefills, bufs, ref32, ref64):
        if b is None:
            continue
        ours.append(b)
        r32.append(pre.astype(np.float64) + g32.astype(np.float64))
        r64.append(pre.astype(np.float64) + g64)
    bad = None if same else "not bitwise reproducible run to run"
    R.compare("grad/%s/%s" % (kernel, case), ours, r32, TOL, bad)
    R.compare("grad64/%s/%s" % (kernel, case), ours, r64, TOL64, bad)


def torch_grads(fn, inputs, dy, dtype):
    """Autograd of sum(fn(*inputs) * dy) wrt every input (None where an input is None)."""
    ts = [None if a is None else t(a).to(dtype).requires_grad_(True) for a in inputs]
    out = fn(*ts)
    out.backward(torch.from_numpy(np.array(dy)).to(dtype))  # np.array keeps 0-d upstream grads 0-d
    return [None if x is None else x.grad.detach().numpy() for x in ts]


def both_grads(fn, inputs, dy):
    return torch_grads(fn, inputs, dy, torch.float32), torch_grads(fn, inputs, dy, torch.float64)


# ---- softmax family ------------------------------------------------------------------------

def test_softmax(lib, R, rng):
    for (outer, n, inner) in [(4, 10, 1), (3, 7, 5), (1, 33, 2), (2, 1, 3), (6, 128, 1)]:
        for kind in ("softmax", "log_softmax"):
            x = f32(rng, outer, n, inner, scale=3.0)
            dy = f32(rng, outer, n, inner)
            y = np.zeros_like(x)
            getattr(lib, "ck_%s_f32" % kind)(p(y), p(x), outer, n, inner)
            pre = [f32(rng, outer, n, inner)]
            bwd = getattr(lib, "ck_%s_backward_f32" % kind)
            bufs, same = run_accumulating(lambda b: bwd(p(b[0]), p(y), p(dy), outer, n, inner), pre)
            fn = (lambda a: torch.softmax(a, 1)) if kind == "softmax" else (lambda a: torch.log_softmax(a, 1))
            g32, g64 = both_grads(fn, [x], dy)
            grad_case(R, kind, "%dx%dx%d" % (outer, n, inner), pre, bufs, same, g32, g64)


def test_max(lib, R, rng):
    for k, (outer, n, inner) in enumerate([(4, 10, 1), (3, 7, 5), (2, 6, 3)]):
        for mode in ("random", "ties"):
            if mode == "ties":  # few distinct values: many tied maxima
                x = np.ascontiguousarray(rng.integers(0, 3, size=(outer, n, inner)).astype(np.float32))
            else:
                x = f32(rng, outer, n, inner)
            dy = f32(rng, outer, inner)
            pre = [f32(rng, outer, n, inner)]
            bufs, same = run_accumulating(
                lambda b: lib.ck_max_backward_f32(p(b[0]), p(x), p(dy), outer, n, inner), pre)
            g32, g64 = both_grads(lambda a: torch.max(a, 1).values, [x], dy)
            grad_case(R, "max", "%dx%dx%d_%s" % (outer, n, inner, mode), pre, bufs, same, g32, g64)


# ---- normalisation ------------------------------------------------------------------------------

def test_layernorm(lib, R, rng):
    eps = 1e-5
    for (rows, n) in [(5, 16), (8, 64), (3, 7), (2, 1), (4, 768)]:
        for affine in ("wb", "w", "none"):
            x = f32(rng, rows, n, scale=2.0) + np.float32(0.5)
            w = f32(rng, n) if affine != "none" else None
            b = f32(rng, n) if affine == "wb" else None
            dy = f32(rng, rows, n)
            out = np.zeros_like(x)
            mean = np.zeros(rows, np.float32)
            rstd = np.zeros(rows, np.float32)
            lib.ck_layernorm_f32(p(out), p(mean), p(rstd), p(x), p(w), p(b), rows, n, eps)
            pre = [f32(rng, rows, n), None if w is None else f32(rng, n), None if b is None else f32(rng, n)]
            bufs, same = run_accumulating(
                lambda B: lib.ck_layernorm_backward_f32(p(B[0]), p(B[1]), p(B[2]), p(dy), p(x), p(w),
                                                        p(mean), p(rstd), rows, n), pre)
            g32, g64 = both_grads(lambda a, ww, bb: F.layer_norm(a, (n,), ww, bb, eps), [x, w, b], dy)
            grad_case(R, "layernorm", "%dx%d_%s" % (rows, n, affine), pre, bufs, same, g32, g64)


def test_rmsnorm(lib, R, rng):
    eps = 1e-6
    for (rows, n) in [(5, 16), (8, 64), (3, 7), (2, 1), (4, 768)]:
        for affine in ("w", "none"):
            x = f32(rng, rows, n, scale=2.0)
            w = f32(rng, n) if affine == "w" else None
            dy = f32(rng, rows, n)
            out = np.zeros_like(x)
            rstd = np.zeros(rows, np.float32)
            lib.ck_rmsnorm_f32(p(out), p(rstd), p(x), p(w), rows, n, eps)
            pre = [f32(rng, rows, n), None if w is None else f32(rng, n)]
            bufs, same = run_accumulating(
                lambda B: lib.ck_rmsnorm_backward_f32(p(B[0]), p(B[1]), p(dy), p(x), p(w), p(rstd), rows, n),
                pre)

            def rms(a, ww):
                y = a * torch.rsqrt(a.pow(2).mean(-1, keepdim=True) + eps)
                return y * ww if ww is not None else y
            g32, g64 = both_grads(rms, [x, w], dy)
            grad_case(R, "rmsnorm", "%dx%d_%s" % (rows, n, affine), pre, bufs, same, g32, g64)


# ---- embedding ------------------------------------------------------------------------------------

def test_embedding(lib, R, rng):
    for (n_idx, V, C) in [(10, 7, 4), (64, 50, 16), (5, 1, 3), (33, 1000, 8)]:
        idx = np.ascontiguousarray(rng.integers(0, V, size=n_idx).astype(np.int32))
        idx[-1] = idx[0]  # at least one repeated index
        table = f32(rng, V, C)
        dy = f32(rng, n_idx, C)
        pre = [f32(rng, V, C)]
        rets = []
        bufs, same = run_accumulating(
            lambda B: rets.append(lib.ck_embedding_backward_f32(p(B[0]), p(dy), p(idx), n_idx, V, C)), pre)
        tt = t(table).requires_grad_(True)
        F.embedding(torch.from_numpy(idx.astype(np.int64)), tt).backward(t(dy))
        g32 = tt.grad.numpy()
        t64 = t(table).double().requires_grad_(True)
        F.embedding(torch.from_numpy(idx.astype(np.int64)), t64).backward(t(dy).double())
        grad_case(R, "embedding", "%dx%dx%d" % (n_idx, V, C), pre, bufs,
                  same and rets == [-1, -1], [g32], [t64.grad.numpy()])
    # out-of-range indices: reported by position, nothing written
    for bad_case, (bad_at, bad_val) in (("negative", (3, -1)), ("too_large", (5, 7)), ("first", (0, 1 << 30))):
        V, C, n_idx = 7, 4, 8
        idx = np.ascontiguousarray(rng.integers(0, V, size=n_idx).astype(np.int32))
        idx[bad_at] = bad_val
        idx[bad_at + 1:] = -5  # later bad indices must not be the one reported
        dt = f32(rng, V, C)
        keep = dt.copy()
        ret = lib.ck_embedding_backward_f32(p(dt), p(f32(rng, n_idx, C)), p(idx), n_idx, V, C)
        R.check("grad/embedding/bad_index_%s" % bad_case, ret == bad_at and np.array_equal(dt, keep),
                "returned %d, expected %d; buffer %s" % (ret, bad_at,
                                                         "untouched" if np.array_equal(dt, keep) else "modified"))


# ---- convolution and pooling ----------------------------------------------------------------------

CONV_CASES = [
    # N, C, H, W, OC, KH, KW, sh, sw, ph, pw, groups
    (2, 3, 8, 8, 4, 3, 3, 1, 1, 1, 1, 1),
    (2, 4, 9, 7, 6, 3, 2, 2, 2, 0, 0, 1),
    (1, 4, 6, 6, 6, 3, 3, 1, 1, 1, 1, 2),
    (2, 5, 7, 7, 5, 3, 3, 2, 2, 1, 1, 5),    # depthwise
    (1, 3, 5, 5, 6, 3, 3, 1, 1, 0, 0, 3),    # depthwise, multiplier 2
    (3, 8, 4, 4, 16, 1, 1, 1, 1, 0, 0, 1),   # 1x1
    (1, 2, 9, 9, 3, 2, 2, 3, 3, 1, 0, 1),    # stride > kernel: some inputs get no gradient
    (1, 6, 10, 8, 4, 5, 3, 2, 1, 2, 1, 2),   # asymmetric kernel, stride and padding
]


def test_conv2d(lib, R, rng):
    for k, (N, C, H, W, OC, KH, KW, sh, sw, ph, pw, groups) in enumerate(CONV_CASES):
        OH = (H + 2 * ph - KH) // sh + 1
        OW = (W + 2 * pw - KW) // sw + 1
        for want in ("all", "nobias", "dw_only"):
            x = f32(rng, N, C, H, W)
            w = f32(rng, OC, C // groups, KH, KW)
            bias = f32(rng, OC) if want == "all" else None
            dy = f32(rng, N, OC, OH, OW)
            pre = [None if want == "dw_only" else f32(rng, N, C, H, W), f32(rng, *w.shape),
                   None if bias is None else f32(rng, OC)]
            bufs, same = run_accumulating(
                lambda B: lib.ck_conv2d_backward_f32(p(B[0]), p(B[1]), p(B[2]), p(dy), p(x), p(w), N, C, H, W,
                                                     OC, KH, KW, sh, sw, ph, pw, groups, OH, OW), pre)
            g32, g64 = both_grads(lambda a, ww, bb: F.conv2d(a, ww, bb, (sh, sw), (ph, pw), 1, groups),
                                  [x, w, bias], dy)
            case = "N%dC%dH%dW%d_OC%d_k%dx%d_s%dx%d_p%dx%d_g%d_%s" % (N, C, H, W, OC, KH, KW, sh, sw, ph, pw,
                                                                   groups, want)
            grad_case(R, "conv2d", case, pre, bufs, same, g32, g64)


POOL_CASES = [
    # N, C, H, W, KH, KW, sh, sw, ph, pw
    (2, 3, 8, 8, 2, 2, 2, 2, 0, 0),
    (1, 2, 7, 9, 3, 3, 2, 2, 1, 1),
    (1, 2, 6, 6, 3, 3, 1, 1, 1, 1),   # overlapping windows
    (2, 1, 5, 7, 3, 2, 1, 2, 1, 0),
    (1, 1, 9, 9, 2, 2, 3, 3, 0, 0),   # stride > kernel
]


def test_pool(lib, R, rng):
    for (N, C, H, W, KH, KW, sh, sw, ph, pw) in POOL_CASES:
        OH = (H + 2 * ph - KH) // sh + 1
        OW = (W + 2 * pw - KW) // sw + 1
        base = "N%dC%dH%dW%d_k%dx%d_s%dx%d_p%dx%d" % (N, C, H, W, KH, KW, sh, sw, ph, pw)
        for mode in ("random", "ties", "nan", "neg_inf"):
            if mode == "ties":
                x = np.ascontiguousarray(rng.integers(0, 2, size=(N, C, H, W)).astype(np.float32))
            else:
                x = f32(rng, N, C, H, W)
            if mode == "nan":
                flat = x.reshape(-1)
                flat[rng.choice(flat.size, size=max(2, flat.size // 6), replace=False)] = np.nan
            if mode == "neg_inf":
                x[...] = -np.inf
            dy = f32(rng, N, C, OH, OW)
            pre = [f32(rng, N, C, H, W)]
            bufs, same = run_accumulating(
                lambda B: lib.ck_maxpool2d_backward_f32(p(B[0]), p(dy), p(x), N, C, H, W, KH, KW, sh, sw, ph, pw,
                                                        OH, OW), pre)
            g32, g64 = both_grads(lambda a: F.max_pool2d(a, (KH, KW), (sh, sw), (ph, pw)), [x], dy)
            grad_case(R, "maxpool2d", base + "_" + mode, pre, bufs, same, g32, g64)
        x = f32(rng, N, C, H, W)
        dy = f32(rng, N, C, OH, OW)
        pre = [f32(rng, N, C, H, W)]
        bufs, same = run_accumulating(
            lambda B: lib.ck_avgpool2d_backward_f32(p(B[0]), p(dy), N, C, H, W, KH, KW, sh, sw, ph, pw, OH, OW),
            pre)
        g32, g64 = both_grads(lambda a: F.avg_pool2d(a, (KH, KW), (sh, sw), (ph, pw), count_include_pad=True),
                              [x], dy)
        grad_case(R, "avgpool2d", base, pre, bufs, same, g32, g64)


# ---- attention ------------------------------------------------------------------------------------

def torch_attention(q, k, v, causal, scale):
    T, S = q.shape[1], k.shape[1]
    s = torch.matmul(q, k.transpose(1, 2)) * scale
    if causal:
        off = max(0, S - T)
        i = torch.arange(T)[:, None]
        j = torch.arange(S)[None, :]
        s = s.masked_fill(j > i + off, float("-inf"))
    return torch.matmul(torch.softmax(s, -1), v)


def test_attention(lib, R, rng):
    cases = [(2, 5, 5, 8, 8), (1, 4, 9, 6, 3), (3, 7, 3, 4, 5), (1, 16, 16, 32, 16), (2, 1, 6, 4, 4)]
    for (B, T, S, D, Dv) in cases:
        for causal in (0, 1):
            scale = 1.0 / math.sqrt(D)
            q, k, v = f32(rng, B, T, D), f32(rng, B, S, D), f32(rng, B, S, Dv)
            dout = f32(rng, B, T, Dv)
            scratch = np.zeros(2 * S, np.float32)
            pre = [f32(rng, B, T, D), f32(rng, B, S, D), f32(rng, B, S, Dv)]
            bufs, same = run_accumulating(
                lambda Z: lib.ck_attention_backward_f32(p(Z[0]), p(Z[1]), p(Z[2]), p(dout), p(q), p(k), p(v),
                                                        B, T, S, D, Dv, causal, scale, p(scratch)), pre)
            g32, g64 = both_grads(lambda a, b, c: torch_attention(a, b, c, causal, scale), [q, k, v], dout)
            grad_case(R, "attention", "B%dT%dS%dD%dDv%d_%s" % (B, T, S, D, Dv, "causal" if causal else "full"),
                      pre, bufs, same, g32, g64)
    # dq only (dk/dv NULL) must give the same dq
    B, T, S, D, Dv = 2, 6, 6, 8, 4
    q, k, v, dout = f32(rng, B, T, D), f32(rng, B, S, D), f32(rng, B, S, Dv), f32(rng, B, T, Dv)
    scratch = np.zeros(2 * S, np.float32)
    full = [np.zeros((B, T, D), np.float32), np.zeros((B, S, D), np.float32), np.zeros((B, S, Dv), np.float32)]
    lib.ck_attention_backward_f32(p(full[0]), p(full[1]), p(full[2]), p(dout), p(q), p(k), p(v), B, T, S, D, Dv,
                                  1, 0.5, p(scratch))
    only = np.zeros((B, T, D), np.float32)
    lib.ck_attention_backward_f32(p(only), None, None, p(dout), p(q), p(k), p(v), B, T, S, D, Dv, 1, 0.5,
                                  p(scratch))
    R.check("grad/attention/dq_only_null_dk_dv", np.array_equal(only, full[0]))


# ---- losses ------------------------------------------------------------------------------------

def test_cross_entropy(lib, R, rng):
    cases = [  # rows, V, ignore_index, label_smoothing, n_ignored, logit scale
        (8, 10, -100, 0.0, 0, 1.0),
        (8, 10, -100, 0.0, 3, 1.0),
        (8, 10, -100, 0.1, 3, 1.0),
        (16, 50, 3, 0.2, 0, 2.0),      # ignore_index inside [0, V)
        (32, 257, -1, 0.05, 5, 1.0),
        (6, 12, -100, 0.3, 0, 60.0),   # large logits: stability
        (5, 7, -100, 0.0, 5, 1.0),     # every row ignored: NaN loss, zero gradient
        (5, 7, -100, 0.25, 5, 1.0),
    ]
    for (rows, V, ign, eps, n_ign, scale) in cases:
        x = f32(rng, rows, V, scale=scale)
        tg = rng.integers(0, V, size=rows).astype(np.int32)
        if 0 <= ign < V:
            tg[tg == ign] = (ign + 1) % V
        tg[rng.choice(rows, size=n_ign, replace=False)] = ign
        tg = np.ascontiguousarray(tg)
        dloss = np.array([0.7], np.float32)
        case = "r%dV%d_ign%d_n%d_ls%g_x%g" % (rows, V, ign, n_ign, eps, scale)
        loss = np.zeros(1, np.float32)
        r1 = lib.ck_cross_entropy_f32(p(loss), p(x), p(tg), rows, V, ign, eps)
        res = {}
        for dt in (torch.float32, torch.float64):
            xt = t(x).to(dt).requires_grad_(True)
            lt = F.cross_entropy(xt, torch.from_numpy(tg.astype(np.int64)), ignore_index=ign, label_smoothing=eps)
            lt.backward(torch.tensor(0.7, dtype=dt))
            res[dt] = (lt.item(), xt.grad.numpy())
        R.compare("loss/cross_entropy/" + case, [loss], [np.array([res[torch.float32][0]])], TOL,
                  None if r1 == -1 else "returned %d" % r1)
        rets = []
        pre = [f32(rng, rows, V)]
        bufs, same = run_accumulating(
            lambda B: rets.append(lib.ck_cross_entropy_backward_f32(p(B[0]), p(dloss), p(x), p(tg), rows, V,
                                                                    ign, eps)), pre)
        grad_case(R, "cross_entropy", case, pre, bufs, same and rets == [-1, -1],
                  [res[torch.float32][1]], [res[torch.float64][1]])
    # targets out of range: position of the first, nothing written
    for name, (at, val) in (("negative", (2, -3)), ("too_large", (4, 10)), ("first", (0, 99))):
        rows, V = 6, 10
        x = f32(rng, rows, V)
        tg = np.ascontiguousarray(rng.integers(0, V, size=rows).astype(np.int32))
        tg[at] = val
        tg[at + 1:] = V  # later bad targets must not be the one reported
        loss = np.array([123.0], np.float32)
        d = f32(rng, rows, V)
        keep = d.copy()
        ra = lib.ck_cross_entropy_f32(p(loss), p(x), p(tg), rows, V, -100, 0.1)
        rb = lib.ck_cross_entropy_backward_f32(p(d), p(np.ones(1, np.float32)), p(x), p(tg), rows, V, -100, 0.1)
        R.check("loss/cross_entropy/bad_target_%s" % name,
                ra == at and rb == at and loss[0] == 123.0 and np.array_equal(d, keep),
                "returned %d/%d, expected %d" % (ra, rb, at))


def test_mse_bce(lib, R, rng):
    for shape in [(7,), (100,), (3, 4, 5), (1,)]:
        n = int(np.prod(shape))
        a, b = f32(rng, *shape), f32(rng, *shape)
        case = "x".join(map(str, shape))
        loss = np.zeros(1, np.float32)
        lib.ck_mse_f32(p(loss), p(a), p(b), n)
        lt = F.mse_loss(t(a), t(b))
        R.compare("loss/mse/" + case, [loss], [np.array([lt.item()])], TOL)
        dloss = np.array([1.3], np.float32)
        pre = [f32(rng, *shape), f32(rng, *shape)]
        bufs, same = run_accumulating(
            lambda B: lib.ck_mse_backward_f32(p(B[0]), p(B[1]), p(dloss), p(a), p(b), n), pre)
        g32, g64 = both_grads(lambda u, w: F.mse_loss(u, w), [a, b], np.array(1.3, np.float32))
        grad_case(R, "mse", case, pre, bufs, same, g32, g64)
    for shape, scale in [((7,), 1.0), ((100,), 5.0), ((3, 4, 5), 2.0), ((16,), 100.0)]:
        n = int(np.prod(shape))
        x = f32(rng, *shape, scale=scale)
        y = np.ascontiguousarray(rng.uniform(0, 1, size=shape).astype(np.float32))  # soft labels too
        if scale >= 100:
            x[:4] = np.array([-100, 100, -90, 95], np.float32)  # exp(-x) would overflow naively
        case = "%s_x%g" % ("x".join(map(str, shape)), scale)
        loss = np.zeros(1, np.float32)
        lib.ck_bce_with_logits_f32(p(loss), p(x), p(y), n)
        lt = F.binary_cross_entropy_with_logits(t(x), t(y))
        R.compare("loss/bce_with_logits/" + case, [loss], [np.array([lt.item()])], TOL)
        dloss = np.array([0.9], np.float32)
        pre = [f32(rng, *shape), f32(rng, *shape)]
        bufs, same = run_accumulating(
            lambda B: lib.ck_bce_with_logits_backward_f32(p(B[0]), p(B[1]), p(dloss), p(x), p(y), n), pre)
        g32, g64 = both_grads(lambda u, w: F.binary_cross_entropy_with_logits(u, w), [x, y],
                              np.array(0.9, np.float32))
        grad_case(R, "bce_with_logits", case, pre, bufs, same, g32, g64)


# ---- optimizers ------------------------------------------------------------------------------------

def state_err(ours, ref):
    ours = np.asarray(ours, np.float64)
    ref = np.asarray(ref, np.float64)
    scale = max(float(np.abs(ref).max()), 1e-30)
    return float(np.abs(ours - ref).max()) / scale


def run_optimizer(R, name, shape, rng, make_torch, step_ours, state_names):
    """OPT_STEPS steps of ours and torch on identical parameters and gradients."""
    p0 = f32(rng, *shape)
    ours = p0.copy()
    states = {s: np.zeros(shape, np.float32) for s in state_names}
    tp = torch.nn.Parameter(t(p0.copy()))
    opt = make_torch([tp])
    worst_p, worst_s, why = 0.0, 0.0, None
    for step in range(1, OPT_STEPS + 1):
        g = f32(rng, *shape, scale=0.5 if step % 3 else 3.0)
        step_ours(ours, g, states, step)
        tp.grad = t(g.copy())
        opt.step()
        e, w = rel_err(ours, tp.detach().numpy())
        worst_p = max(worst_p, e)
        why = why or w
        for s in state_names:
            worst_s = max(worst_s, state_err(states[s], opt.state[tp][s].numpy()))
    moved, _ = rel_err(ours, p0)
    if not why and worst_p > TOL_OPT:
        why = "parameters exceed tolerance %g" % TOL_OPT
    if not why and worst_s > TOL_OPT:
        why = "optimizer state exceeds tolerance %g (maxrel %.3g)" % (TOL_OPT, worst_s)
    if not why and moved < 1e-4:
        why = "parameters did not move (test would prove nothing)"
    R.line(why is None, "optim/%s/%s" % (name, "x".join(map(str, shape))), max(worst_p, worst_s), why)


def test_optimizers(lib, R, rng):
    sgd_cfgs = [  # name, lr, momentum, dampening, weight_decay, nesterov
        ("sgd_plain", 0.1, 0.0, 0.0, 0.0, False),
        ("sgd_wd", 0.05, 0.0, 0.0, 0.01, False),
        ("sgd_momentum", 0.1, 0.9, 0.0, 0.0, False),
        ("sgd_momentum_damp_wd", 0.05, 0.9, 0.1, 1e-2, False),
        ("sgd_nesterov_wd", 0.1, 0.9, 0.0, 1e-4, True),
    ]
    adam_cfgs = [  # name, lr, betas, eps, weight_decay, decoupled
        ("adam_default", 1e-3, (0.9, 0.999), 1e-8, 0.0, 0),
        ("adam_l2", 1e-2, (0.9, 0.95), 1e-6, 0.1, 0),
        ("adamw", 3e-4, (0.9, 0.95), 1e-8, 0.1, 1),
        ("adamw_nowd_lr1e-2", 1e-2, (0.8, 0.99), 1e-8, 0.0, 1),
        ("adamw_default", 1e-3, (0.9, 0.999), 1e-8, 1e-2, 1),
    ]
    for shape in [(37,), (8, 16)]:
        for (name, lr, mom, damp, wd, nest) in sgd_cfgs:
            states = ["momentum_buffer"] if mom else []

            def ours_sgd(par, g, st, step, lr=lr, mom=mom, damp=damp, wd=wd, nest=nest):
                buf = st.get("momentum_buffer")
                lib.ck_sgd_update_f32(p(par), p(g), p(buf), par.size, lr, mom, damp, wd, int(nest), int(step == 1))
            run_optimizer(R, name, shape, rng,
                          lambda ps, lr=lr, mom=mom, damp=damp, wd=wd, nest=nest: torch.optim.SGD(
                              ps, lr=lr, momentum=mom, dampening=damp, weight_decay=wd, nesterov=nest,
                              foreach=False),
                          ours_sgd, states)
        for (name, lr, betas, eps, wd, dec) in adam_cfgs:
            def ours_adam(par, g, st, step, lr=lr, betas=betas, eps=eps, wd=wd, dec=dec):
                lib.ck_adam_update_f32(p(par), p(g), p(st["exp_avg"]), p(st["exp_avg_sq"]), par.size, lr,
                                       betas[0], betas[1], eps, wd, step, dec)
            cls = torch.optim.AdamW if dec else torch.optim.Adam
            run_optimizer(R, name, shape, rng,
                          lambda ps, cls=cls, lr=lr, betas=betas, eps=eps, wd=wd: cls(
                              ps, lr=lr, betas=betas, eps=eps, weight_decay=wd, foreach=False),
                          ours_adam, ["exp_avg", "exp_avg_sq"])


def test_clip(lib, R, rng):
    for max_norm in (0.5, 3.0, 1e6):
        shapes = [(10, 7), (64,), (3, 3, 3)]
        grads = [f32(rng, *s) for s in shapes]
        tparams = [torch.nn.Parameter(torch.zeros(s)) for s in shapes]
        for tp_, g in zip(tparams, grads):
            tp_.grad = t(g.copy())
        tnorm = float(torch.nn.utils.clip_grad_norm_(tparams, max_norm))
        ours = [g.copy() for g in grads]
        total = math.sqrt(sum(lib.ck_grad_sq_norm_f32(p(g), g.size) for g in ours))
        coef = lib.ck_clip_coef(total, max_norm)
        for g in ours:
            lib.ck_scale_f32(p(g), g.size, coef)
        e1, _ = rel_err(np.array([total]), np.array([tnorm]))
        worst = e1
        for g, tp_ in zip(ours, tparams):
            worst = max(worst, rel_err(g, tp_.grad.numpy())[0])
        clipped = coef < 1.0
        R.line(worst <= TOL_OPT and clipped == (max_norm < tnorm), "clip/grad_norm/max%g" % max_norm, worst,
               "exceeds tolerance %g or clipping decision differs" % TOL_OPT)


def nanogpt_get_lr(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    # nanoGPT train.py get_lr, transcribed
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters:
        return min_lr
    decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    assert 0 <= decay_ratio <= 1
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
    return min_lr + coeff * (learning_rate - min_lr)


def sched_line(R, name, ours, ref, tol):
    e, why = rel_err(np.array(ours), np.array(ref))
    R.line(why is None and e <= tol, name, e, why or "exceeds tolerance %g" % tol)


def test_schedules(lib, R, rng):
    steps = range(0, 300)
    lr, min_lr = 6e-4, 6e-5
    for (warm, decay) in [(10, 200), (0, 100), (50, 60), (20, 20)]:
        ours = [lib.ck_lr_cosine(lr, min_lr, s, warm, decay) for s in steps]
        ref = [nanogpt_get_lr(s, lr, min_lr, warm, decay) if decay > warm or s < warm else min_lr for s in steps]
        sched_line(R, "sched/cosine/nanogpt_w%d_d%d" % (warm, decay), ours, ref, TOL_SCHED_FORMULA)
    # warmup 0: torch's CosineAnnealingLR (recursive form) up to T_max
    T_max = 100
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sch = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=T_max, eta_min=min_lr)
    ref, ours = [], []
    for s in range(T_max + 1):
        ref.append(opt.param_groups[0]["lr"])
        ours.append(lib.ck_lr_cosine(lr, min_lr, s, 0, T_max))
        opt.step()
        sch.step()
    sched_line(R, "sched/cosine/torch_CosineAnnealingLR_T%d" % T_max, ours, ref, TOL_SCHED_TORCH)
    for (warm,) in [(10,), (1,), (0,)]:
        ours = [lib.ck_lr_linear_warmup(lr, s, warm) for s in range(50)]
        ref = [lr * (s + 1) / (warm + 1) if s < warm else lr for s in range(50)]
        sched_line(R, "sched/linear_warmup/nanogpt_w%d" % warm, ours, ref, TOL_SCHED_FORMULA)
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
        sch = torch.optim.lr_scheduler.LambdaLR(opt, lambda s, w=warm: (s + 1) / (w + 1) if s < w else 1.0)
        ref = []
        for s in range(50):
            ref.append(opt.param_groups[0]["lr"])
            opt.step()
            sch.step()
        sched_line(R, "sched/linear_warmup/torch_LambdaLR_w%d" % warm, ours, ref, TOL_SCHED_TORCH)
    for (size, gamma) in [(30, 0.1), (7, 0.5), (1, 0.99)]:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
        sch = torch.optim.lr_scheduler.StepLR(opt, step_size=size, gamma=gamma)
        ref, ours = [], []
        for s in range(120):
            ref.append(opt.param_groups[0]["lr"])
            ours.append(lib.ck_lr_step(lr, s, size, gamma))
            opt.step()
            sch.step()
        sched_line(R, "sched/step/torch_StepLR_s%d_g%g" % (size, gamma), ours, ref, TOL_SCHED_TORCH)
    # linear decay, warmup 0: torch's LinearLR(start_factor=1, end_factor=0)
    total = 40
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sch = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0, end_factor=0.0, total_iters=total)
    ref, ours = [], []
    for s in range(total + 10):
        ref.append(opt.param_groups[0]["lr"])
        ours.append(lib.ck_lr_linear(lr, 0.0, s, 0, total))
        opt.step()
        sch.step()
    sched_line(R, "sched/linear/torch_LinearLR_T%d" % total, ours, ref, TOL_SCHED_TORCH)
    for (warm, decay) in [(10, 100), (0, 50), (5, 5)]:
        ours = [lib.ck_lr_linear(lr, min_lr, s, warm, decay) for s in range(120)]
        ref = [lr * (s + 1) / (warm + 1) if s < warm else
               (min_lr if s >= decay else lr + (min_lr - lr) * (s - warm) / (decay - warm)) for s in range(120)]
        sched_line(R, "sched/linear/formula_w%d_d%d" % (warm, decay), ours, ref, TOL_SCHED_FORMULA)
    ours = [lib.ck_lr_constant(lr, s) for s in range(10)]
    sched_line(R, "sched/constant/lr", ours, [lr] * 10, 0.0)


def main():
    lib = build_lib()
    rng = np.random.default_rng(20240612)
    torch.manual_seed(0)
    R = Report()
    print("# gradients: rel = |ours - torch| / max(1, |torch|) <= %g vs torch float32, <= %g vs torch float64"
          % (TOL, TOL64))
    print("# optimizers/clipping: <= %g over %d steps; schedules <= %g (formula) / %g (torch schedulers)"
          % (TOL_OPT, OPT_STEPS, TOL_SCHED_FORMULA, TOL_SCHED_TORCH))
    for test in (test_softmax, test_max, test_layernorm, test_rmsnorm, test_embedding, test_conv2d, test_pool,
                 test_attention, test_cross_entropy, test_mse_bce, test_optimizers, test_clip, test_schedules):
        test(lib, R, rng)
    for key in sorted(R.worst):
        print("# max observed %-28s %.3g" % (key, R.worst[key]))
    print("# training kernels: %d passed, %d failed" % (R.passed, R.failed))
    return 1 if R.failed else 0


if __name__ == "__main__":
    sys.exit(main())
