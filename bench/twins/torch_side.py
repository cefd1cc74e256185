#!/usr/bin/python3
"""bench/twins/torch_side.py - the PyTorch side of bench/train_bench.py.

One process per measurement, so that its peak RSS is its own (the parent
reads it with os.wait4). The models are the parity twins of
test-suite/parity/twins.py, imported, not copied; the training step mirrors
what the generated program's `train` does per step (rt-min/ck_main.c):

    next batch -> zero grads -> forward -> cross_entropy -> backward
    -> global grad norm + clip (clip_grad_norm_) -> AdamW step -> loss.item()

PyTorch runs at its best settings (docs/bench.md): torch.set_num_threads(k)
here; the parent sets OMP_NUM_THREADS / OPENBLAS_NUM_THREADS /
MKL_NUM_THREADS = k, OMP_WAIT_POLICY=PASSIVE for k > 1, GLIBC_TUNABLES
(mmap/trim thresholds), and unsets OPENBLAS_CORETYPE. AdamW uses foreach=True.

Usage (the parent calls it; by hand for debugging):
  torch_side.py train --model tiny_gpt --steps 20 --threads 1 --data F [--data2 G] --out R.json
  torch_side.py infer --model tiny_gpt --reps 50 --threads 1 --out R.json
  torch_side.py decode --model tiny_gpt --reps 5 --threads 1 --out R.json
  torch_side.py idle --out R.json          (import torch only: the RSS floor)
The JSON holds per-step (or per-forward) seconds and torch's version.
"""

import argparse
import json
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "test-suite", "parity"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import twins  # noqa: E402

# Hyper-parameters both sides use (train_bench.py writes the same into the
# .ckm train blocks it generates). Only their cost matters here.
LR, BETAS, EPS, WD, CLIP = 1e-3, (0.9, 0.95), 1e-8, 0.1, 1.0

# name -> (factory, kind, batch, (shape...)); kind: "tokens" or "images"
GPT2 = dict(V=50257, T=64, C=768, L=12, H=12)
MODELS = {
    "mlp": (lambda: twins.MLP(), "images", 64, (784,)),
    "cnn": (lambda: twins.CNN(), "images", 64, (1, 28, 28)),
    "tiny_gpt": (lambda: twins.TinyGPT(), "tokens", 8, dict(V=256, T=64)),
    "gpt2_small": (lambda: twins.TinyGPT(**GPT2), "tokens", 4, dict(V=50257, T=64)),
}


def gpt_init(model):
    """GPT-2's N(0, 0.02) for the embeddings (the twin starts them at zero)."""
    with torch.no_grad():
        for name in ("wte", "wpe"):
            if hasattr(model, name):
                getattr(model, name).normal_(0.0, 0.02)


def adamw_for(model):
    """AdamW with ckc's default decay rule: rank >= 2 parameters decay."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": WD}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=LR, betas=BETAS, eps=EPS, foreach=True)


class TokenBatches:
    """Random windows of T+1 tokens, like the runtime's tokens source."""

    def __init__(self, path, batch, T, V, gen):
        dt = np.uint8 if V <= 256 else np.dtype("<u2")
        self.data = torch.from_numpy(np.fromfile(path, dtype=dt).astype(np.int64))
        self.batch, self.T, self.gen = batch, T, gen
        self.ar = torch.arange(T + 1)

    def next(self):
        off = torch.randint(0, self.data.numel() - self.T - 1, (self.batch,), generator=self.gen)
        w = self.data[off[:, None] + self.ar]
        return w[:, :-1], w[:, 1:]


class SampleBatches:
    """Shuffled epochs over (x, y) arrays, like the runtime's npy source."""

    def __init__(self, xpath, ypath, batch, gen):
        self.x = torch.from_numpy(np.load(xpath))
        self.y = torch.from_numpy(np.load(ypath).astype(np.int64))
        self.batch, self.gen = batch, gen
        self.order, self.pos = torch.randperm(self.x.shape[0], generator=gen), 0

    def next(self):
        if self.pos + self.batch > self.order.numel():
            self.order, self.pos = torch.randperm(self.x.shape[0], generator=self.gen), 0
        i = self.order[self.pos:self.pos + self.batch]
        self.pos += self.batch
        return self.x[i], self.y[i]


def train(args):
    factory, kind, batch, shape = MODELS[args.model]
    torch.manual_seed(1)
    gen = torch.Generator().manual_seed(1)
    model = factory()
    gpt_init(model)
    model.train()
    opt = adamw_for(model)
    params = [p for p in model.parameters()]
    if kind == "tokens":
        src = TokenBatches(args.data, batch, shape["T"], shape["V"], gen)
    else:
        src = SampleBatches(args.data, args.data2, batch, gen)
    times, losses = [], []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        x, y = src.next()
        opt.zero_grad(set_to_none=True)
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, CLIP)
        opt.step()
        losses.append(loss.item())
        times.append(time.perf_counter() - t0)
    return {"step_s": times, "loss": losses}


def infer(args):
    factory, kind, _, shape = MODELS[args.model]
    torch.manual_seed(1)
    model = factory()
    gpt_init(model)
    model.eval()
    if kind == "tokens":
        x = torch.randint(0, shape["V"], (1, shape["T"]))
    else:
        x = torch.rand((1,) + tuple(shape))
    times = []
    with torch.inference_mode():
        for _ in range(args.reps):
            t0 = time.perf_counter()
            out = model(x)
            float(out[0, -1, 0]) if out.dim() == 3 else float(out[0, 0])
            times.append(time.perf_counter() - t0)
    return {"forward_s": times}


class KVDecoder:
    """Generation with a K/V cache over the TinyGPT twin, the way a careful
    PyTorch user writes it: caches preallocated once ([L, B, H, T, D]), the
    new position's k and v copied in, attention of the one query over rows
    0..pos, the model's own modules for everything else. Run under
    torch.inference_mode()."""

    def __init__(self, model, B, T):
        self.m = model
        C = model.wte.shape[1]
        self.H = model.blocks[0].attn.n_head
        self.C, self.D = C, C // self.H
        shape = (len(model.blocks), B, self.H, T, self.D)
        self.k, self.v = torch.zeros(shape), torch.zeros(shape)
        self.scale = 1.0 / math.sqrt(self.D)

    def step(self, tok, pos):
        """tok: int64 [B, 1] at position pos -> logits [B, 1, V]."""
        m, H, D, C = self.m, self.H, self.D, self.C
        B = tok.shape[0]
        x = F.embedding(tok, m.wte) + m.wpe[pos]
        for i, blk in enumerate(m.blocks):
            q, k, v = blk.attn.c_attn(blk.ln_1(x)).split(C, dim=2)
            self.k[i, :, :, pos] = k.view(B, H, D)
            self.v[i, :, :, pos] = v.view(B, H, D)
            att = torch.softmax((q.view(B, H, 1, D) @ self.k[i, :, :, :pos + 1].transpose(-1, -2)) * self.scale,
                                dim=-1)
            y = (att @ self.v[i, :, :, :pos + 1]).reshape(B, 1, C)
            x = x + blk.attn.c_proj(y)
            x = x + blk.mlp(blk.ln_2(x))
        return m.ln_f(x) @ m.wte.t()


def decode(args):
    """Per-token latency of generation with a K/V cache, batch 1: each rep
    decodes positions 0..T-1 of one sequence, every call timed. Checked once
    against the full forward first (the same logits at every position), so
    the cached path does all the work the forward does."""
    factory, kind, _, shape = MODELS[args.model]
    if kind != "tokens":
        raise SystemExit("decode: %s is not a language model" % args.model)
    torch.manual_seed(1)
    model = factory()
    gpt_init(model)
    model.eval()
    T = shape["T"]
    x = torch.randint(0, shape["V"], (1, T))
    times = []
    with torch.inference_mode():
        dec = KVDecoder(model, 1, T)
        full = model(x)
        for pos in range(T):
            got = dec.step(x[:, pos:pos + 1], pos)
            if not torch.allclose(got[:, 0], full[:, pos], rtol=1e-4, atol=1e-5):
                raise SystemExit("decode: the cached step differs from the forward at position %d" % pos)
        for _ in range(args.reps):
            for pos in range(T):
                t0 = time.perf_counter()
                out = dec.step(x[:, pos:pos + 1], pos)
                float(out[0, 0, 0])
                times.append(time.perf_counter() - t0)
    return {"decode_s": times}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["train", "infer", "decode", "idle"])
    ap.add_argument("--model", default="mlp", choices=sorted(MODELS))
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data")
    ap.add_argument("--data2")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.mode == "train":
        res = train(args)
    elif args.mode == "infer":
        res = infer(args)
    elif args.mode == "decode":
        res = decode(args)
    else:
        res = {}
    res.update(torch=torch.__version__, threads=torch.get_num_threads())
    with open(args.out, "w") as f:
        json.dump(res, f)


if __name__ == "__main__":
    main()
