"""test-suite/parity/twins.py - PyTorch twins of the samples in samples/.

Each module has exactly the parameter names and shapes that ckc gives the
sample (state_dict keys = safetensors names), and computes what the .ckm
forward computes, written with plain torch ops (torch 1.13: no
scaled_dot_product_attention, no nn.RMSNorm).
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class MLP(nn.Module):
    """samples/mlp.ckm: 784 -> 256 -> relu -> 10."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 256)
        self.fc2 = nn.Linear(256, 10)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class CNN(nn.Module):
    """samples/cnn.ckm: two conv+relu+maxpool stages, flatten, linear."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc = nn.Linear(32 * 7 * 7, 10)

    def forward(self, x):
        h = F.max_pool2d(torch.relu(self.conv1(x)), 2)
        h = F.max_pool2d(torch.relu(self.conv2(h)), 2)
        return self.fc(h.reshape(x.shape[0], -1))


class CausalSelfAttention(nn.Module):
    """stdlib nn.CausalSelfAttention(C, H): GPT-2's c_attn / c_proj."""

    def __init__(self, C, H):
        super().__init__()
        self.n_head = H
        self.c_attn = nn.Linear(C, 3 * C)
        self.c_proj = nn.Linear(C, C)

    def forward(self, x):
        B, T, C = x.shape
        D = C // self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.reshape(B, T, self.n_head, D).permute(0, 2, 1, 3)
        k = k.reshape(B, T, self.n_head, D).permute(0, 2, 1, 3)
        v = v.reshape(B, T, self.n_head, D).permute(0, 2, 1, 3)
        att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(D))
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        att = torch.softmax(att.masked_fill(~mask, float("-inf")), dim=-1)
        y = (att @ v).permute(0, 2, 1, 3).reshape(B, T, C)
        return self.c_proj(y)


class GptMLP(nn.Module):
    """stdlib nn.MLP(C): c_fc, gelu (tanh form), c_proj."""

    def __init__(self, C):
        super().__init__()
        self.c_fc = nn.Linear(C, 4 * C)
        self.c_proj = nn.Linear(4 * C, C)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    """stdlib nn.Block(C, H): pre-LN residual attention + MLP."""

    def __init__(self, C, H):
        super().__init__()
        self.ln_1 = nn.LayerNorm(C)
        self.attn = CausalSelfAttention(C, H)
        self.ln_2 = nn.LayerNorm(C)
        self.mlp = GptMLP(C)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class TinyGPT(nn.Module):
    """samples/tiny_gpt.ckm: V=256 T=64 C=128 L=4 H=4, tied head."""

    def __init__(self, V=256, T=64, C=128, L=4, H=4):
        super().__init__()
        self.wte = nn.Parameter(torch.zeros(V, C))
        self.wpe = nn.Parameter(torch.zeros(T, C))
        self.blocks = nn.ModuleList([Block(C, H) for _ in range(L)])
        self.ln_f = nn.LayerNorm(C)

    def forward(self, idx):
        x = F.embedding(idx.long(), self.wte) + self.wpe
        for blk in self.blocks:
            x = blk(x)
        return self.ln_f(x) @ self.wte.t()


class RMSNorm(nn.Module):
    """stdlib nn.RMSNorm(C, eps=1e-5)."""

    def __init__(self, C, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(C))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class ResBlock(nn.Module):
    """samples/resmlp.ckm ResBlock(W): x + silu(ff(norm(x)))."""

    def __init__(self, W):
        super().__init__()
        self.norm = RMSNorm(W)
        self.ff = nn.Linear(W, W)

    def forward(self, x):
        return x + F.silu(self.ff(self.norm(x)))


class ResMLP(nn.Module):
    """samples/resmlp.ckm: linear stem, DEPTH residual RMSNorm/SiLU blocks,
    LayerNorm, bias-free head, log_softmax."""

    def __init__(self, D_in=64, W=96, N_CLS=10, DEPTH=3):
        super().__init__()
        self.stem = nn.Linear(D_in, W)
        self.blocks = nn.ModuleList([ResBlock(W) for _ in range(DEPTH)])
        self.head_norm = nn.LayerNorm(W)
        self.head = nn.Linear(W, N_CLS, bias=False)

    def forward(self, x):
        h = self.stem(x)
        for blk in self.blocks:
            h = blk(h)
        return torch.log_softmax(self.head(self.head_norm(h)), dim=-1)


class StdlibMix(nn.Module):
    """test-suite/parity/stdlib_mix.ckm."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 16)
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.proj = nn.Linear(8, 16, bias=False)
        self.norm = RMSNorm(16)
        self.mlp = GptMLP(16)
        self.attn = CausalSelfAttention(16, 2)
        self.ln = nn.LayerNorm(16, eps=1e-3)

    def forward(self, idx, img):
        h = self.conv(img)
        p = h.permute(0, 2, 3, 1).reshape(2, 25, 8)
        x = self.norm(self.proj(p) + self.emb(idx.long()))
        y = self.mlp(x)
        return self.ln(self.attn(y) + x)
