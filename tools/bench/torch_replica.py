#!/usr/bin/python3
"""PyTorch replica of Mist's single-process CPU training (`mist train`), for tools/bench/executor-vs-torch.js.

The same two tiny models as packages/core/src/model-catalog.ts, trained the way
packages/executor/src/train/single-process.ts trains them:
  gpt-tiny:   4 layers, hidden 64, 4 heads of 16, MLP 256, vocabulary 256, 64 learned positions, pre-LayerNorm
              (eps 1e-5) with biases, tanh-GELU, final LayerNorm, LM head tied to the token table.
  llama-tiny: 4 layers, hidden 64, 4 query heads and 2 key/value heads of 16, SwiGLU MLP 176, RMSNorm (eps 1e-5),
              rotary positions ("rotate half", theta 1e4), no biases, untied LM head.
  Initialisation: normal(0, 0.02), output projections (attention out, MLP down) 0.02 / sqrt(2 * layers)
  (GPT-2, Radford et al. 2019, section 2.3), norms' gains 1, biases 0 (packages/executor/src/model/block-params.ts).
  AdamW (torch.optim.AdamW, betas 0.9 / 0.95, eps 1e-8, weight decay 0.1 on the matrices and the token table,
  none on norms, biases and the position table), global-norm clipping at 1.0, learning rate 3e-3 with 10 linear
  warm-up steps then cosine decay to 0.1 x (packages/core/src/training-defaults.ts,
  packages/executor/src/train/optimizer.ts), fp32, global batch 16 x sequence 64 as one micro-batch, random
  windows of the shipped byte-level corpus (packages/executor/data/corpus.txt).
The random number generators differ from Mist's, so the losses follow the same course but are not equal.

Each step's time covers what Mist's StepReport.seconds covers: zero the gradients, sample the batch, forward,
backward, clip and update. Prints one JSON object: {"model", "params", "threads", "steps": [{"step", "loss",
"seconds"}]}.

Run with Debian's interpreter (/usr/bin/python3, with python3-torch installed):
  /usr/bin/python3 tools/bench/torch_replica.py --model gpt-tiny --steps 200 --threads 1
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MODELS = {
    'gpt-tiny': dict(layers=4, hidden=64, heads=4, kv_heads=4, ffn=256, vocab=256, max_seq=64,
                     norm='layernorm', activation='gelu', positional='learned', tied=True, bias=True),
    'llama-tiny': dict(layers=4, hidden=64, heads=4, kv_heads=2, ffn=176, vocab=256, max_seq=64,
                       norm='rmsnorm', activation='swiglu', positional='rope', tied=False, bias=False),
}
INIT_STD = 0.02
NORM_EPS = 1e-5
ROPE_THETA = 10000.0
LR = 3e-3
WARMUP = 10
MIN_LR_RATIO = 0.1
BETAS = (0.9, 0.95)
ADAM_EPS = 1e-8
WEIGHT_DECAY = 0.1
MAX_GRAD_NORM = 1.0


class Norm(nn.Module):
    def __init__(self, kind, h):
        super().__init__()
        self.kind = kind
        self.gamma = nn.Parameter(torch.ones(h))
        self.beta = nn.Parameter(torch.zeros(h)) if kind == 'layernorm' else None

    def forward(self, x):
        if self.kind == 'layernorm':
            return F.layer_norm(x, (x.shape[-1],), self.gamma, self.beta, NORM_EPS)
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + NORM_EPS) * self.gamma


def linear(rows, cols, std, bias):
    """A [rows, cols] weight (x @ W, as Mist stores it) and an optional bias."""
    w = nn.Parameter(torch.randn(rows, cols) * std)
    b = nn.Parameter(torch.zeros(cols)) if bias else None
    return w, b


def apply(x, w, b):
    return torch.addmm(b, x, w) if b is not None else x @ w


def rope_tables(seq, d):
    inv = ROPE_THETA ** (-torch.arange(0, d // 2, dtype=torch.float64) * 2 / d)
    ang = torch.arange(seq, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cos(ang).float(), torch.sin(ang).float()


def rope(x, cos, sin):
    """x [b, heads, s, d]: element i pairs with i + d/2 (GPT-NeoX / Llama "rotate half")."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class Layer(nn.Module):
    def __init__(self, m):
        super().__init__()
        h, a, k, f, L = m['hidden'], m['heads'], m['kv_heads'], m['ffn'], m['layers']
        d = h // a
        self.m, self.d = m, d
        out_std = INIT_STD / math.sqrt(2 * L)
        self.norm1 = Norm(m['norm'], h)
        self.wq, self.bq = linear(h, a * d, INIT_STD, m['bias'])
        self.wk, self.bk = linear(h, k * d, INIT_STD, m['bias'])
        self.wv, self.bv = linear(h, k * d, INIT_STD, m['bias'])
        self.wo, self.bo = linear(a * d, h, out_std, m['bias'])
        self.norm2 = Norm(m['norm'], h)
        if m['activation'] == 'swiglu':
            self.wg, self.bg = linear(h, f, INIT_STD, m['bias'])
            self.wu, self.bu = linear(h, f, INIT_STD, m['bias'])
            self.wd, self.bd = linear(f, h, out_std, m['bias'])
        else:
            self.w1, self.b1 = linear(h, f, INIT_STD, m['bias'])
            self.w2, self.b2 = linear(f, h, out_std, m['bias'])

    def forward(self, x, b, s, mask, cos, sin):
        m, d = self.m, self.d
        a, k = m['heads'], m['kv_heads']
        y = self.norm1(x)
        q = apply(y, self.wq, self.bq).view(b, s, a, d).transpose(1, 2)
        kk = apply(y, self.wk, self.bk).view(b, s, k, d).transpose(1, 2)
        v = apply(y, self.wv, self.bv).view(b, s, k, d).transpose(1, 2)
        if cos is not None:
            q, kk = rope(q, cos, sin), rope(kk, cos, sin)
        if k != a:  # grouped-query attention: query head h reads key/value head h / (a / k)
            kk = kk.repeat_interleave(a // k, dim=1)
            v = v.repeat_interleave(a // k, dim=1)
        # PyTorch 1.13 has no fused attention on the CPU: the standard causal composition.
        att = (q @ kk.transpose(-1, -2)) * (1.0 / math.sqrt(d))
        att = att.masked_fill(mask, float('-inf')).softmax(-1)
        o = (att @ v).transpose(1, 2).reshape(b * s, a * d)
        x = x + apply(o, self.wo, self.bo)
        y = self.norm2(x)
        if m['activation'] == 'swiglu':
            hmid = F.silu(apply(y, self.wg, self.bg)) * apply(y, self.wu, self.bu)
            return x + apply(hmid, self.wd, self.bd)
        return x + apply(F.gelu(apply(y, self.w1, self.b1), approximate='tanh'), self.w2, self.b2)


class Model(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m
        h = m['hidden']
        self.wte = nn.Parameter(torch.randn(m['vocab'], h) * INIT_STD)
        self.wpe = nn.Parameter(torch.randn(m['max_seq'], h) * INIT_STD) if m['positional'] == 'learned' else None
        self.layers = nn.ModuleList([Layer(m) for _ in range(m['layers'])])
        self.norm = Norm(m['norm'], h)
        self.lm_head = None if m['tied'] else nn.Parameter(torch.randn(m['vocab'], h) * INIT_STD)
        self.rope = rope_tables(m['max_seq'], h // m['heads']) if m['positional'] == 'rope' else None

    def forward(self, tokens, targets, b, s):
        x = F.embedding(tokens.view(-1), self.wte)
        if self.wpe is not None:
            x = (x.view(b, s, -1) + self.wpe[:s]).view(b * s, -1)
        mask = torch.ones(s, s, dtype=torch.bool).triu(1)
        cos, sin = (self.rope[0][:s], self.rope[1][:s]) if self.rope is not None else (None, None)
        for layer in self.layers:
            x = layer(x, b, s, mask, cos, sin)
        x = self.norm(x)
        logits = x @ (self.wte if self.lm_head is None else self.lm_head).t()
        return F.cross_entropy(logits, targets.view(-1))


def param_groups(model):
    """Matrices and the token table (and an untied head) decay; norms, biases and the position table do not."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.dim() == 2 and name != 'wpe' else no_decay).append(p)
    return [{'params': decay, 'weight_decay': WEIGHT_DECAY}, {'params': no_decay, 'weight_decay': 0.0}]


def learning_rate(step, total):
    if WARMUP > 0 and step <= WARMUP:
        return LR * step / WARMUP
    t = min(1.0, (step - WARMUP) / max(1, total - WARMUP))
    return LR * (MIN_LR_RATIO + (1 - MIN_LR_RATIO) * 0.5 * (1 + math.cos(math.pi * t)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--model', choices=sorted(MODELS), default='gpt-tiny')
    ap.add_argument('--steps', type=int, default=200)
    ap.add_argument('--threads', type=int, default=1, help='torch.set_num_threads (intra-op threads)')
    ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--seq', type=int, default=64)
    ap.add_argument('--seed', type=int, default=1234)
    ap.add_argument('--corpus', default=os.path.join(os.path.dirname(os.path.abspath(__file__)), '../../packages/executor/data/corpus.txt'))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    m = MODELS[args.model]
    model = Model(m)
    opt = torch.optim.AdamW(param_groups(model), lr=LR, betas=BETAS, eps=ADAM_EPS)
    text = np.frombuffer(open(args.corpus, 'rb').read(), dtype=np.uint8)
    rng = np.random.default_rng(args.seed)
    b, s = args.batch, args.seq
    steps = []
    for step in range(1, args.steps + 1):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        starts = rng.integers(0, len(text) - s, size=b)
        window = np.stack([text[i:i + s + 1] for i in starts]).astype(np.int64)
        tokens = torch.from_numpy(np.ascontiguousarray(window[:, :-1]))
        targets = torch.from_numpy(np.ascontiguousarray(window[:, 1:]))
        loss = model(tokens, targets, b, s)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
        for g in opt.param_groups:
            g['lr'] = learning_rate(step, args.steps)
        opt.step()
        seconds = time.perf_counter() - t0
        steps.append({'step': step, 'loss': loss.item(), 'seconds': seconds})
    json.dump({'model': args.model, 'params': sum(p.numel() for p in model.parameters()), 'threads': args.threads,
               'torch': torch.__version__, 'steps': steps}, sys.stdout)
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
