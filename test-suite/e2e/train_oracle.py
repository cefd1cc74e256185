#!/usr/bin/python3
# test-suite/e2e/train_oracle.py - PyTorch twins of the e2e training programs
# (test-suite/e2e/train_*.ckm), used two ways by test-suite/e2e/run.sh:
#
#   train_oracle.py data MODEL DIR          writes the data files MODEL's train
#                                           block reads, under DIR/data/
#   train_oracle.py batch MODEL X Y [BAD]   writes one random batch (X, Y .npy);
#                                           BAD: a class target out of range
#   train_oracle.py grad MODEL W G X Y      checks the loss and every gradient
#                                           that `PROG grad` wrote into G (for
#                                           weights W and batch X, Y) against
#                                           PyTorch in float64
#
# Tolerance: the C code runs in float32 with fixed-order sums; each gradient
# must agree to 1e-4 relative to its largest element (float64 reference), the
# loss to 1e-5 relative. Exit 1 with the worst offenders otherwise.
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)


def load_safetensors(path):
    raw = open(path, 'rb').read()
    n = struct.unpack('<Q', raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, v in header.items():
        if name == '__metadata__':
            continue
        s, e = v['data_offsets']
        dt = {'F32': np.float32, 'I32': np.int32}[v['dtype']]
        out[name] = np.frombuffer(raw[8 + n + s:8 + n + e], dtype=dt).reshape(v['shape'])
    return out


# ---- the twins: loss(params dict of leaf tensors, x, y) ------------------------------

def linear_loss(P, x, y):
    logits = x @ P['weight'].T + P['bias']
    return F.cross_entropy(logits, y.long(), label_smoothing=0.1)


def gpt_loss(P, x, y, V=16, T=8, C=16, L=2, H=2, B=2):
    def lin(h, n):
        return h @ P[n + '.weight'].T + P[n + '.bias']

    def ln(h, n):
        return F.layer_norm(h, (C,), P[n + '.weight'], P[n + '.bias'], 1e-5)

    x = x.long()
    h = P['wte'][x] + P['wpe']
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
    for i in range(L):
        p = f'blocks.{i}.'
        qkv = lin(ln(h, p + 'ln_1'), p + 'attn.c_attn')
        q, k, v = [t.reshape(B, T, H, C // H).permute(0, 2, 1, 3) for t in qkv.split(C, dim=2)]
        att = (q @ k.transpose(-1, -2)) / np.sqrt(C // H)
        att = att.masked_fill(mask, float('-inf')).softmax(-1)
        o = (att @ v).permute(0, 2, 1, 3).reshape(B, T, C)
        h = h + lin(o, p + 'attn.c_proj')
        h = h + lin(F.gelu(lin(ln(h, p + 'ln_2'), p + 'mlp.c_fc'), approximate='tanh'), p + 'mlp.c_proj')
    logits = ln(h, 'ln_f') @ P['wte'].T
    return F.cross_entropy(logits.reshape(-1, V), y.long().reshape(-1))


def conv_loss(P, x, y, B=4):
    h = F.silu(F.conv2d(x, P['c1'], P['b1'], stride=1, padding=1))
    p = F.max_pool2d(h, 2)
    q = F.gelu(F.conv2d(p, P['c2'], None, stride=2, padding=1))
    a = F.avg_pool2d(p, 2, stride=1)
    r = q.reshape(B, 24)
    f = r * torch.rsqrt((r * r).mean(-1, keepdim=True) + 1e-5) * P['g']
    s = f.softmax(-1) + f.log_softmax(-1) * 0.1
    top = a.reshape(B, 4, 9).max(dim=2, keepdim=True).values
    t = s[:, 1:24:2]
    z = torch.cat([t, top.reshape(B, 4), torch.sigmoid(s[:, 0:20])], dim=1)
    out = z @ P['head'].T + z.sum(1, keepdim=True).detach()
    return F.mse_loss(out, y)


MODELS = {'train_linear': linear_loss, 'train_gpt': gpt_loss, 'train_conv': conv_loss}


# ---- data files for each train block ----------------------------------------------------

def write_data(model, d):
    os.makedirs(os.path.join(d, 'data'), exist_ok=True)
    rng = np.random.default_rng(11)
    if model == 'train_linear':
        n = 64
        x = rng.standard_normal((n, 6)).astype(np.float32)
        y = (x[:, :3].argmax(1)).astype(np.int32)  # learnable: the largest of the first 3 features
        np.save(os.path.join(d, 'data/x.npy'), x)
        np.save(os.path.join(d, 'data/y.npy'), y)
    elif model == 'train_gpt':
        tok = np.tile(np.arange(16, dtype=np.uint8), 40)  # a learnable cycle 0..15
        tok.tofile(os.path.join(d, 'data/tokens.u8'))
    elif model == 'train_conv':
        n = 32
        x = rng.standard_normal((n, 2, 8, 8)).astype(np.float32)
        y = np.stack([x.mean((1, 2, 3)), x[:, 0].std((1, 2)), x[:, 1].max((1, 2))], 1).astype(np.float32)
        np.save(os.path.join(d, 'data/x.npy'), x)
        np.save(os.path.join(d, 'data/y.npy'), y)
    else:
        raise SystemExit(f'unknown model {model}')


def write_batch(model, xpath, ypath, bad=False):
    rng = np.random.default_rng(5)
    if model == 'train_linear':
        x = rng.standard_normal((8, 6)).astype(np.float32)
        y = rng.integers(0, 3, 8).astype(np.int32)
        if bad:
            y[5] = 3
    elif model == 'train_gpt':
        x = rng.integers(0, 16, (2, 8)).astype(np.int32)
        y = rng.integers(0, 16, (2, 8)).astype(np.int32)
        if bad:
            y[1, 3] = -7
    elif model == 'train_conv':
        x = rng.standard_normal((4, 2, 8, 8)).astype(np.float32)
        y = rng.standard_normal((4, 3)).astype(np.float32)
    else:
        raise SystemExit(f'unknown model {model}')
    np.save(xpath, x)
    np.save(ypath, y)


def check_grad(model, wpath, gpath, xpath, ypath):
    W = load_safetensors(wpath)
    G = load_safetensors(gpath)
    x, y = np.load(xpath), np.load(ypath)
    P = {k: torch.tensor(v.astype(np.float64), requires_grad=True) for k, v in W.items()}
    xt = torch.tensor(x.astype(np.float64) if x.dtype.kind == 'f' else x.astype(np.int64))
    yt = torch.tensor(y.astype(np.float64) if y.dtype.kind == 'f' else y.astype(np.int64))
    loss = MODELS[model](P, xt, yt)
    loss.backward()
    bad = []
    lref, lgot = float(loss), float(G['loss'])
    if abs(lref - lgot) > 1e-5 * max(1.0, abs(lref)):
        bad.append(f'loss: torch {lref:.8g}, C {lgot:.8g}')
    worst = 0.0
    for name, t in P.items():
        if name not in G:
            bad.append(f'{name}: no gradient written')
            continue
        ref = t.grad.numpy()
        scale = np.abs(ref).max()
        err = np.abs(ref - G[name]).max() / max(scale, 1e-6)
        worst = max(worst, err)
        if scale == 0 and np.abs(G[name]).max() == 0:
            continue
        if not err <= 1e-4:
            bad.append(f'{name}: relative error {err:.3g} (max |grad| {scale:.3g})')
    if bad:
        print('\n'.join(bad))
        return 1
    print(f'{model}: loss {lgot:.6g}, {len(P)} gradients, worst relative error {worst:.2g}')
    return 0


if __name__ == '__main__':
    if len(sys.argv) == 4 and sys.argv[1] == 'data':
        write_data(sys.argv[2], sys.argv[3])
    elif len(sys.argv) in (5, 6) and sys.argv[1] == 'batch':
        write_batch(sys.argv[2], sys.argv[3], sys.argv[4], len(sys.argv) == 6)
    elif len(sys.argv) == 7 and sys.argv[1] == 'grad':
        sys.exit(check_grad(*sys.argv[2:]))
    else:
        raise SystemExit('usage: train_oracle.py data MODEL DIR | batch MODEL X Y [bad] | grad MODEL W G X Y')
