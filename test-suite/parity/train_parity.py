#!/usr/bin/python3
"""test-suite/parity/train_parity.py - 20 training steps of every sample against PyTorch.

For each sample with a train block (mlp, cnn, tiny_gpt, resmlp):
  1. compile it with `build/ckc -t c99`, build it, run `prog init --seed S`;
  2. write a small data set of the sample's own kind (IDX files, a byte-token
     file, or .npy files) and run `prog train --weights init --steps 20
     --data ... --eval-data ...` (everything else from the sample's train block);
  3. train its PyTorch twin (test-suite/parity/twins.py) from the same initial
     weights, on the same batches, with torch.optim (Adam / AdamW with the
     sample's per-parameter weight-decay split, clip_grad_norm_, the learning
     rate of the sample's schedule set on the param groups each step);
  4. compare the loss of every step (metrics.jsonl) and every final parameter
     (weights.safetensors), plus the end-of-run evaluation (eval_loss,
     eval_accuracy).

THE SAME BATCHES. The runtime's sampler is documented in docs/train.md ("Data
sources", rt-min/ck_rng.c): a named stream is xoshiro256** seeded by four
splitmix64 outputs of FNV-1a-64(seed as 8 LE bytes || name); sample sources
visit the train split in a Fisher-Yates shuffle per epoch (stream
"data:epoch:<e>", j = u64 % (i + 1) for i = n-1 .. 1) and skip an epoch's
trailing partial batch; token sources draw `batch` window offsets
u64 % (train_tokens - seq) from the stream "data". This file reimplements that
sampler in Python, independently of the C, and feeds the twin with it. The
data sets are sized so that the 20 steps cross several epoch boundaries
(sample sources: 3 batches per epoch plus a partial batch that must be
skipped), so a wrong shuffle, a wrong epoch stream or a wrong split shows up
as a loss mismatch at the first step that differs. Being one batch long would
have hidden all of that.

THE SAME HYPER-PARAMETERS. Each spec below restates the sample's train block
(optimizer, betas, eps, weight decay, clip, schedule, seed); the run's
manifest.json must agree with it, so editing a sample without this file is a
FAIL, not a silently different comparison.

TOLERANCES (never loosened to pass; see the report lines for the observed maxima):
  loss of every step      |ckc - torch_f32| <= 1e-4 (absolute), or, at a step where
                          float32 itself cannot hold that (the parameter rule's
                          second arm): |ckc - torch_f64| <= |torch_f32 - torch_f64|
  every final parameter   max |ckc - torch_f32| <= 1e-4 (absolute, over all elements),
                          or, for a tensor where float32 itself cannot hold that:
                          max |ckc - torch_f64| <= max |torch_f32 - torch_f64|
                          (ckc no further from the exact trajectory than PyTorch's
                          own float32 run; both distances are printed)
  final eval loss         |ckc - torch_f32| <= 1e-4; eval accuracy within 1 sample
The C program and the float32 twin round differently (summation order, fused
vs unfused updates); each line also reports both against a float64 twin on the
same batches, which shows how much of the difference is float32 rounding.
Why the parameter rule has a second arm: in the CNN, a ReLU/max-pool near-tie
is decided differently by float32 rounding around step 15 and 80 elements of
conv2.weight jump; PyTorch's float32 run then ends 1.22e-4 from its float64
twin. No float32 program can be held to 1e-4 of another there; it can be held
to being no worse than PyTorch float32 against float64, which is what the
second arm checks. The same near-tie reaches the CNN's loss on some CPUs: on
an AVX2-only AMD EPYC (2026-12-08) PyTorch's float32 loss at step 19 was
1.28e-4 from its float64 twin while ckc's was 3.2e-6 from it, so the loss has
the same second arm, step by step.

Output: `PASS train/<sample>/<check> ...` / `FAIL ...`; exit 1 on any failure.
CKC_TRAIN_PARITY_FILTER=name runs one sample; CKC_KEEP_TMP=1 keeps the work dirs.
"""

import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ckc_harness as H  # noqa: E402
import twins  # noqa: E402

STEPS = 20
TOL_LOSS = 1e-4
TOL_PARAM = 1e-4
TOL_EVAL = 1e-4
torch.set_num_threads(1)

M64 = (1 << 64) - 1


# ---- the runtime's sampler, reimplemented (docs/train.md, rt-min/ck_rng.c) --------------

def fnv1a64(h, data):
    for b in data:
        h ^= b
        h = (h * 0x100000001b3) & M64
    return h


class Xoshiro:
    """xoshiro256** seeded from splitmix64 outputs 1..4 of the seed."""

    def __init__(self, seed):
        x = seed & M64
        self.s = []
        for _ in range(4):
            x = (x + 0x9e3779b97f4a7c15) & M64
            z = x
            z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & M64
            z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M64
            self.s.append(z ^ (z >> 31))

    @classmethod
    def stream(cls, seed, name):
        return cls(fnv1a64(fnv1a64(0xcbf29ce484222325, struct.pack("<Q", seed)), name.encode()))

    def u64(self):
        s = self.s

        def rotl(x, k):
            return ((x << k) | (x >> (64 - k))) & M64
        result = (rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result


class SampleSampler:
    """IDX / npy: Fisher-Yates per epoch over the train split, partial batch skipped."""

    def __init__(self, xs, ys, batch, seed):
        self.xs, self.ys, self.batch, self.seed = xs, ys, batch, seed
        self.n = len(xs)  # val_fraction 0 for idx/npy: the whole file trains
        self.epoch, self.pos = 0, 0
        self.perm = self._order(0)

    def _order(self, e):
        r = Xoshiro.stream(self.seed, "data:epoch:%d" % e)
        perm = list(range(self.n))
        for i in range(self.n - 1, 0, -1):
            j = r.u64() % (i + 1)
            perm[i], perm[j] = perm[j], perm[i]
        return perm

    def next(self):
        if self.pos + self.batch > self.n:
            self.epoch += 1
            self.pos = 0
            self.perm = self._order(self.epoch)
        idx = self.perm[self.pos:self.pos + self.batch]
        self.pos += self.batch
        return self.xs[idx], self.ys[idx]


class TokenSampler:
    """tokens: the last floor(n * val) tokens are validation; windows at u64 % (train - seq)."""

    def __init__(self, tok, batch, seq, seed, val=0.1):
        self.tok, self.batch, self.seq = tok, batch, seq
        nval = int(float(len(tok)) * val)
        self.train_end = len(tok) - nval
        self.rng = Xoshiro.stream(seed, "data")

    def next(self):
        span = self.train_end - self.seq
        offs = [self.rng.u64() % span for _ in range(self.batch)]
        x = np.stack([self.tok[o:o + self.seq] for o in offs]).astype(np.int32)
        y = np.stack([self.tok[o + 1:o + 1 + self.seq] for o in offs]).astype(np.int32)
        return x, y

    def eval_batches(self, limit):
        """Consecutive non-overlapping windows (stride seq) of the val split, in order."""
        ev = self.tok[self.train_end:]
        n = (len(ev) - 1) // self.seq // self.batch if len(ev) >= self.seq + 1 else 0
        n = min(n, limit) if limit > 0 else n
        out = []
        for b in range(n):
            rows = [(b * self.batch + i) * self.seq for i in range(self.batch)]
            out.append((np.stack([ev[o:o + self.seq] for o in rows]).astype(np.int32),
                        np.stack([ev[o + 1:o + 1 + self.seq] for o in rows]).astype(np.int32)))
        return out


# ---- learning-rate schedules (docs/language.md; nanoGPT's get_lr) ------------------------

def lr_at(sched, lr, s, steps):
    kind, warmup, min_lr = sched["kind"], sched.get("warmup", 0), sched.get("min_lr", 0.0)
    if kind in ("cosine", "linear", "constant") and s < warmup:
        return lr * (s + 1) / (warmup + 1)
    if kind == "constant":
        return lr
    if kind == "cosine":
        if s > steps:
            return min_lr
        r = (s - warmup) / (steps - warmup)
        return min_lr + 0.5 * (1.0 + math.cos(math.pi * r)) * (lr - min_lr)
    if kind == "linear":
        if s > steps:
            return min_lr
        return lr + (min_lr - lr) * (s - warmup) / (steps - warmup)
    raise ValueError("schedule %s not modelled" % kind)


# ---- data sets written for the test ------------------------------------------------------

def write_idx(path, arr, code):
    """IDX: 0x00 0x00 type ndim, big-endian dims, data (u8 here)."""
    with open(path, "wb") as f:
        f.write(bytes([0, 0, code, arr.ndim]))
        for d in arr.shape:
            f.write(struct.pack(">I", d))
        f.write(arr.astype(np.uint8).tobytes())


def image_data(rng, n, work, stem, protos):
    """n 28x28 u8 images: the class's pattern (protos[label]) plus noise, labels 0..9."""
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    noise = rng.integers(0, 256, size=(n, 28, 28)).astype(np.float64)
    imgs = np.clip(0.6 * protos[labels] + 0.4 * noise, 0, 255).astype(np.uint8)
    xp, yp = os.path.join(work, stem + "-images"), os.path.join(work, stem + "-labels")
    write_idx(xp, imgs, 0x08)
    write_idx(yp, labels, 0x08)
    x = (imgs.astype(np.float64) * (1.0 / 255.0)).astype(np.float32)
    return "%s,%s" % (xp, yp), x, labels.astype(np.int64)


def text_data(work, n):
    """n bytes of English text: the fortunes-min file (always installed), repeated if short."""
    src = "/usr/share/games/fortunes/fortunes"
    raw = open(src, "rb").read() if os.path.isfile(src) else b"the quick brown fox jumps over the lazy dog. " * 64
    while len(raw) < n:
        raw += raw
    raw = raw[:n]
    p = os.path.join(work, "text.u8")
    open(p, "wb").write(raw)
    return p, np.frombuffer(raw, dtype=np.uint8).astype(np.int64)


def feature_data(rng, n, work, stem, centres):
    """n feature vectors around class centres (float32 .npy) and i32 labels."""
    y = rng.integers(0, len(centres), size=n).astype(np.int32)
    x = (centres[y] + 1.5 * rng.normal(0.0, 1.0, size=centres[y].shape)).astype(np.float32)
    xp, yp = os.path.join(work, stem + "-x.npy"), os.path.join(work, stem + "-y.npy")
    np.save(xp, x)
    np.save(yp, y)
    return "%s,%s" % (xp, yp), x, y.astype(np.int64)


# ---- the samples ---------------------------------------------------------------------------
# decay(name, shape): the default rule (rank >= 2) unless the block says otherwise.

def rank2(name, shape):
    return len(shape) >= 2


SPECS = [
    dict(name="mlp", path="samples/mlp.ckm", exe="mlp", twin=twins.MLP, kind="images",
         xshape=(784,), batch=64, n_train=200, n_eval=128,
         optim=dict(kind="adam", lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                    clip=0.0),
         schedule=dict(kind="cosine", warmup=0, min_lr=0.0), seed=1, decay=rank2),
    dict(name="cnn", path="samples/cnn.ckm", exe="cnn", twin=twins.CNN, kind="images",
         xshape=(1, 28, 28), batch=64, n_train=200, n_eval=128,
         optim=dict(kind="adam", lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                    clip=0.0),
         schedule=dict(kind="cosine", warmup=0, min_lr=1e-4), seed=1, decay=rank2),
    dict(name="tiny_gpt", path="samples/tiny_gpt.ckm", exe="tinygpt", twin=twins.TinyGPT,
         kind="tokens", batch=8, seq=64, n_tokens=24000, eval_batches=20,
         optim=dict(kind="adamw", lr=1e-3, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1,
                    clip=1.0),
         schedule=dict(kind="cosine", warmup=100, min_lr=1e-4), seed=1337, decay=rank2),
    dict(name="resmlp", path="samples/resmlp.ckm", exe="resmlp", twin=twins.ResMLP,
         kind="features", batch=32, n_train=100, n_eval=64,
         optim=dict(kind="adamw", lr=3e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.05,
                    clip=1.0),
         schedule=dict(kind="cosine", warmup=50, min_lr=0.0), seed=1, decay=rank2),
]


def check_manifest(spec, man):
    """The run's settings must be the ones this twin is built from."""
    o, s = man["optimizer"], man["schedule"]
    problems = []
    for k, v in spec["optim"].items():
        if (o.get(k) != v) if isinstance(v, str) else abs(o.get(k, float("nan")) - v) > 1e-12 * max(1, abs(v)):
            problems.append("optimizer.%s = %r, the twin uses %r" % (k, o.get(k), v))
    if o.get("accum") != 1:
        problems.append("accum %r (the twin does 1)" % o.get("accum"))
    for k, v in spec["schedule"].items():
        if (s.get(k) != v) if isinstance(v, str) else abs(s.get(k, float("nan")) - v) > 1e-12 * max(1, abs(v)):
            problems.append("schedule.%s = %r, the twin uses %r" % (k, s.get(k), v))
    if man.get("seed") != spec["seed"]:
        problems.append("seed %r, the twin uses %r" % (man.get("seed"), spec["seed"]))
    return problems


def twin_train(spec, init, sampler_factory, eval_set, dtype):
    """Trains the twin for STEPS steps in dtype; returns (losses, lrs, state dict, eval)."""
    model = spec["twin"]().to(dtype)
    model.load_state_dict({k: torch.from_numpy(v.astype(np.float32)).to(dtype) for k, v in init})
    named = dict(model.named_parameters())
    names = [k for k, _ in init]           # table order of the weights file
    o = spec["optim"]
    dec = [named[k] for k in names if spec["decay"](k, named[k].shape)]
    nodec = [named[k] for k in names if not spec["decay"](k, named[k].shape)]
    groups = [dict(params=dec, weight_decay=o["weight_decay"]), dict(params=nodec, weight_decay=0.0)]
    cls = torch.optim.AdamW if o["kind"] == "adamw" else torch.optim.Adam
    opt = cls(groups, lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"])
    sampler = sampler_factory()
    losses, lrs = [], []

    def loss_of(x, y):
        out = model(torch.from_numpy(x).to(dtype) if x.dtype != np.int32 else torch.from_numpy(x))
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), torch.from_numpy(y).long().reshape(-1)), out

    for s in range(STEPS):
        x, y = sampler.next()
        opt.zero_grad()
        loss, _ = loss_of(x, y)
        loss.backward()
        if o["clip"] > 0:
            torch.nn.utils.clip_grad_norm_([named[k] for k in names], o["clip"])
        lr = lr_at(spec["schedule"], o["lr"], s, STEPS)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        losses.append(float(loss.item()))
        lrs.append(lr)
    ev_loss, correct, total = 0.0, 0, 0
    with torch.no_grad():
        for x, y in eval_set:
            loss, out = loss_of(x, y)
            ev_loss += float(loss.item())
            pred = out.reshape(-1, out.shape[-1]).argmax(-1).numpy()
            correct += int((pred == y.reshape(-1)).sum())
            total += y.size
    ev = (ev_loss / len(eval_set), correct, total) if eval_set else None
    state = {k: v.detach().to(torch.float64).numpy() for k, v in model.state_dict().items()}
    return losses, lrs, state, ev


def run_sample(spec, results):
    tag = "train/%s" % spec["name"]
    rng = np.random.default_rng(sum(map(ord, spec["name"])) * 104729)
    work = H.make_workdir("ckc-train-%s-" % spec["name"])
    try:
        t0 = time.time()
        try:
            proj = H.Project(work, os.path.join(H.ROOT, spec["path"]), spec["exe"])
        except H.StepError as e:
            results.append((False, "%s/build stage=%s %s" % (tag, e.stage, e.detail)))
            return
        init_path = os.path.join(work, "init.safetensors")
        proj.init(init_path, spec["seed"])
        init = H.read_safetensors(init_path)

        # data of the sample's kind, and the batches the runtime will draw
        b = spec["batch"]
        if spec["kind"] == "images":
            protos = rng.integers(0, 256, size=(10, 28, 28)).astype(np.float64)
            data_arg, x, y = image_data(rng, spec["n_train"], work, "train", protos)
            eval_arg, ex, ey = image_data(rng, spec["n_eval"], work, "eval", protos)
            xs = x.reshape((-1,) + spec["xshape"])
            exs = ex.reshape((-1,) + spec["xshape"])
            factory = (lambda: SampleSampler(xs, y, b, spec["seed"]))
            eval_set = [(exs[i:i + b], ey[i:i + b]) for i in range(0, len(exs) - b + 1, b)]
        elif spec["kind"] == "features":
            centres = rng.normal(0.0, 1.0, size=(10, 64))
            data_arg, x, y = feature_data(rng, spec["n_train"], work, "train", centres)
            eval_arg, ex, ey = feature_data(rng, spec["n_eval"], work, "eval", centres)
            factory = (lambda: SampleSampler(x, y, b, spec["seed"]))
            eval_set = [(ex[i:i + b], ey[i:i + b]) for i in range(0, len(ex) - b + 1, b)]
        else:
            data_arg, tok = text_data(work, spec["n_tokens"])
            eval_arg = None
            factory = (lambda: TokenSampler(tok, b, spec["seq"], spec["seed"]))
            eval_set = factory().eval_batches(spec["eval_batches"])

        run_dir = os.path.join(work, "run")
        cmd = [proj.exe, "train", "--weights", init_path, "--steps", str(STEPS), "--data", data_arg,
               "--run-dir", run_dir, "--quiet"]
        if eval_arg:
            cmd += ["--eval-data", eval_arg]
        try:
            H.run(cmd, "train", timeout=900)
        except H.StepError as e:
            results.append((False, "%s/train stage=%s %s" % (tag, e.stage, e.detail)))
            return
        t_c = time.time() - t0
        man = json.load(open(os.path.join(run_dir, "manifest.json")))
        problems = check_manifest(spec, man)
        results.append((not problems, "%s/settings the twin's optimizer and schedule are the run's%s"
                        % (tag, (": " + "; ".join(problems)) if problems else "")))
        if problems:
            return
        recs = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
        c_loss = {r["step"]: r["loss"] for r in recs if "loss" in r}
        c_lr = {r["step"]: r["lr"] for r in recs if "loss" in r}
        c_eval = [r for r in recs if "eval_loss" in r]
        final = dict(H.read_safetensors(os.path.join(run_dir, "weights.safetensors")))

        t1 = time.time()
        l32, lrs, s32, ev32 = twin_train(spec, init, factory, eval_set, torch.float32)
        l64, _, s64, ev64 = twin_train(spec, init, factory, eval_set, torch.float64)
        t_py = time.time() - t1

        # per-step loss
        if sorted(c_loss) != list(range(1, STEPS + 1)):
            results.append((False, "%s/loss metrics.jsonl has steps %s, expected 1..%d"
                            % (tag, sorted(c_loss)[:5], STEPS)))
            return
        d32 = [abs(c_loss[s + 1] - l32[s]) for s in range(STEPS)]
        d64 = [abs(c_loss[s + 1] - l64[s]) for s in range(STEPS)]
        t64 = [abs(l32[s] - l64[s]) for s in range(STEPS)]
        worst = int(np.argmax(d32))
        bad_steps = [s + 1 for s in range(STEPS) if not (d32[s] <= TOL_LOSS or d64[s] <= t64[s])]
        arm = "" if max(d32) <= TOL_LOSS else " [float32-limited: ckc-f64 <= torch32-f64 at step %d]" % (worst + 1)
        results.append((not bad_steps,
                        "%s/loss %d steps max|ckc-torch| %.3g at step %d (tol %g; ckc-f64 %.3g, "
                        "torch32-f64 %.3g; loss %.4f -> %.4f)%s%s"
                        % (tag, STEPS, max(d32), worst + 1, TOL_LOSS, max(d64), max(t64),
                           c_loss[1], c_loss[STEPS], arm,
                           "" if not bad_steps else "; failing steps: %s" % bad_steps[:5])))
        lr_err = max(abs(c_lr[s + 1] - lrs[s]) / max(lrs[s], 1e-30) for s in range(STEPS))
        results.append((lr_err <= 1e-12, "%s/lr schedule max rel err %.3g" % (tag, lr_err)))

        # final parameters
        missing = sorted(set(s32) - set(final))
        if missing:
            results.append((False, "%s/params missing in weights.safetensors: %s" % (tag, missing[:5])))
            return
        per = []
        for k in s32:
            a = final[k].astype(np.float64)
            per.append((float(np.max(np.abs(a - s32[k]))), k, float(np.max(np.abs(a - s64[k]))),
                        float(np.max(np.abs(s32[k] - s64[k]))),
                        float(np.max(np.abs(a - dict(init)[k].astype(np.float64))))))
        per.sort(reverse=True)
        e, k, e64, t64p, moved = per[0]
        bad = [q for q in per if not (q[0] <= TOL_PARAM or q[2] <= q[3])]
        arm = "" if e <= TOL_PARAM else " [float32-limited: ckc-f64 <= torch32-f64]"
        results.append((not bad,
                        "%s/params %d tensors max|ckc-torch| %.3g in %s (tol %g; ckc-f64 %.3g, "
                        "torch32-f64 %.3g; that tensor moved %.3g from init)%s%s"
                        % (tag, len(per), e, k, TOL_PARAM, e64, t64p, moved, arm,
                           "" if not bad else "; failing: " + ", ".join(q[1] for q in bad[:5]))))

        # end-of-run evaluation (metrics record at the last step)
        if not c_eval or c_eval[-1].get("step") != STEPS:
            results.append((False, "%s/eval no eval record at step %d" % (tag, STEPS)))
        else:
            r = c_eval[-1]
            de = abs(r["eval_loss"] - ev32[0])
            acc_ok = True
            acc_txt = ""
            if "eval_accuracy" in r:
                c_correct = round(r["eval_accuracy"] * ev32[2])
                acc_ok = abs(c_correct - ev32[1]) <= 1
                acc_txt = ", accuracy ckc %d/%d torch %d/%d" % (c_correct, ev32[2], ev32[1], ev32[2])
            results.append((de <= TOL_EVAL and acc_ok,
                            "%s/eval loss |ckc-torch| %.3g (tol %g; ckc-f64 %.3g)%s"
                            % (tag, de, TOL_EVAL, abs(r["eval_loss"] - ev64[0]), acc_txt)))
        print("# %s: ckc build+train %.1fs, twins (f32+f64) %.1fs" % (tag, t_c, t_py), flush=True)
    except Exception as e:  # a harness problem is still a FAIL line
        import traceback
        traceback.print_exc()
        results.append((False, "%s harness error %s: %s" % (tag, type(e).__name__, e)))
    finally:
        H.remove_workdir(work)


def main():
    print("# train parity: %d steps; tolerances loss %g abs, params %g abs, eval loss %g abs"
          % (STEPS, TOL_LOSS, TOL_PARAM, TOL_EVAL), flush=True)
    flt = os.environ.get("CKC_TRAIN_PARITY_FILTER", "")
    failed = 0
    for spec in SPECS:
        if flt and flt != spec["name"]:
            continue
        results = []
        run_sample(spec, results)
        for ok, line in results:
            print(("PASS " if ok else "FAIL ") + line, flush=True)
            failed += 0 if ok else 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
