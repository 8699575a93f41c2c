"""Wings learners + router (one decoder layer, stage 2) in PyTorch, written from the math in
packages/wings/README.md (LoRRA learner, ReweightLinear router), not from the authors' code:

  Q = X + (X·A_qᵀ)·B_qᵀ, K = F + (F·A_kᵀ)·B_kᵀ, V = F + (F·A_vᵀ)·B_vᵀ     [B, L, H]
  q, k = rope(split(Q), posQ), rope(split(K), posK)                        rotate-half
  P = softmax(q·kᵀ/√d + mask);  out = (merge(P·split(V))·A_oᵀ)·B_oᵀ        [B, Lq, H]
  s = Σ_heads P_main; z = s·W[:, :L]ᵀ + b; (w_v, w_t) = softmax(SiLU(z))
  h ← h + w_v·out_v·hasImage + w_t·out_t

Shapes as packages/wings/bench/learners.bench.ts: B = 1, L = 256 (64 image tokens at 16..79), H = 1024,
16 heads, r = 64, router width 4096. Usage: python3 wings_learners.py [H heads r L Ni]
"""
import math
import sys

import torch
import torch.nn.functional as F

from common import best_ms, matmul_gflops, report, setup


def rope(x, positions, theta):  # x [B, h, L, d], positions [B, L]
    d = x.shape[-1]
    inv = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.float32) / d))  # [d/2]
    angles = positions[:, None, :, None].float() * inv  # [B, 1, L, d/2]
    cos, sin = torch.cat([angles.cos()] * 2, -1), torch.cat([angles.sin()] * 2, -1)
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


class LowRank(torch.nn.Module):
    def __init__(self, h, r):
        super().__init__()
        self.down = torch.nn.Linear(h, r, bias=False)
        self.up = torch.nn.Linear(r, h, bias=False)
        torch.nn.init.normal_(self.up.weight, std=0.02)  # non-zero so every path computes something

    def forward(self, x):
        return self.up(self.down(x))


class LoRRA(torch.nn.Module):
    def __init__(self, h, heads, r, theta=1e6):
        super().__init__()
        self.heads, self.theta = heads, theta
        self.q, self.k, self.v, self.o = (LowRank(h, r) for _ in range(4))

    def forward(self, x, f, pos_q, pos_k, mask):  # mask [B, 1, Lq, Lk] bool or None
        b, lq, h = x.shape
        lk, d = f.shape[1], h // self.heads
        split = lambda t, n: t.view(b, n, self.heads, d).transpose(1, 2)  # [B, h, n, d]
        q = rope(split(x + self.q(x), lq), pos_q, self.theta)
        k = rope(split(f + self.k(f), lk), pos_k, self.theta)
        v = split(f + self.v(f), lk)
        scores = q @ k.transpose(-1, -2) / math.sqrt(d)
        if mask is not None:
            scores = scores.masked_fill(~mask, -1e9)
        out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, lq, h)
        return self.o(out)


class Router(torch.nn.Module):
    def __init__(self, max_length):
        super().__init__()
        self.linear = torch.nn.Linear(max_length, 2)

    def forward(self, probs):  # [B, heads, L, L]
        s = probs.sum(1)
        L = s.shape[-1]
        z = s @ self.linear.weight[:, :L].t() + self.linear.bias
        w = F.silu(z).softmax(-1)
        return w[..., 0:1], w[..., 1:2]


def main():
    h, heads, r, L, ni = (int(v) for v in (sys.argv[1:6] if len(sys.argv) >= 6 else (1024, 16, 64, 256, 64)))
    start = 16
    setup()
    visual_learner, text_learner, router = LoRRA(h, heads, r), LoRRA(h, heads, r), Router(4096)
    params = [*visual_learner.parameters(), *text_learner.parameters(), *router.parameters()]
    residual = torch.randn(1, L, h)
    embeddings = torch.randn(1, L, h)
    visual_tokens = torch.randn(1, ni, h)
    positions = torch.arange(L)[None]
    visual_positions = torch.arange(start, start + ni)[None]
    text_real = torch.ones(1, L, dtype=torch.bool)
    text_real[:, start:start + ni] = False
    causal = positions[:, None, :, None] >= positions[:, None, None, :]  # [1, 1, L, L]
    text_mask = causal & text_real[:, None, None, :]
    causal_bias = torch.triu(torch.full((L, L), -1e9), 1)
    probs = (torch.randn(1, heads, L, L) + causal_bias).softmax(-1)
    has_image = torch.ones(1, 1, 1)
    weights = torch.randn(1, L, h)

    def layer():
        out_v = visual_learner(residual, visual_tokens, positions, visual_positions, None)
        out_t = text_learner(residual, embeddings, positions, positions, text_mask)
        w_v, w_t = router(probs)
        return residual + w_v * out_v * has_image + w_t * out_t

    def forward():
        with torch.no_grad():
            layer()

    def forward_backward():
        for p in params:
            p.grad = None
        (layer() * weights).sum().backward()

    low_rank = lambda rows: 2 * rows * r * 2 * h
    learner = lambda keys: low_rank(L) + 2 * low_rank(keys) + 2 * (2 * L * keys * h) + low_rank(L)
    flops = learner(ni) + learner(L) + 2 * L * L * 2
    report("Wings learners + router", best_ms(forward), best_ms(forward_backward), flops, H=h, heads=heads, r=r, L=L, Ni=ni,
           matmul_gflops=matmul_gflops(128, h, h))  # the @mllm bench's reference product


if __name__ == "__main__":
    main()
