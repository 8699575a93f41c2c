"""ParrotMoE forward / forward+backward in PyTorch, written from the paper's math (spec §3):
q = H[0]; a = softmax(q·Xᵀ/√D); g = a·X; w = softmax(g·W_gateᵀ); out = Σ_i w_i·SwiGLU_i(H) + α·H.
Usage: python3 parrot_moe.py [D I E N T]
"""
import math
import sys

import torch
import torch.nn.functional as F

from common import best_ms, matmul_gflops, report, setup


class SwiGLUExpert(torch.nn.Module):
    def __init__(self, d: int, i: int):
        super().__init__()
        self.gate_proj = torch.nn.Linear(d, i, bias=False)
        self.up_proj = torch.nn.Linear(d, i, bias=False)
        self.down_proj = torch.nn.Linear(i, d, bias=False)

    def forward(self, h):
        return self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class MoE(torch.nn.Module):
    def __init__(self, d: int, i: int, e: int, alpha: float = 0.1):
        super().__init__()
        self.gate = torch.nn.Linear(d, e, bias=False)
        self.experts = torch.nn.ModuleList([SwiGLUExpert(d, i) for _ in range(e)])
        self.alpha = alpha

    def forward(self, h, x):  # h [N, D], x [T, D]
        d = h.shape[-1]
        scores = h[0:1] @ x.t() / math.sqrt(d)  # [1, T]
        pooled = torch.softmax(scores, -1) @ x  # [1, D]
        weights = torch.softmax(self.gate(pooled), -1)  # [1, E]
        mixed = sum(weights[0, k] * expert(h) for k, expert in enumerate(self.experts))
        return mixed + self.alpha * h


def main():
    d, i, e, n, t = (int(v) for v in (sys.argv[1:6] if len(sys.argv) >= 6 else (1024, 1024, 6, 577, 64)))
    setup()
    moe = MoE(d, i, e)
    h = torch.randn(n, d, requires_grad=True)
    x = torch.randn(t, d)

    def forward():
        with torch.no_grad():
            moe(h, x)

    def forward_backward():
        moe.zero_grad(set_to_none=True)
        moe(h, x).square().sum().backward()

    flops = e * 3 * 2 * n * d * i + 4 * t * d + 2 * d * e
    report("ParrotMoE", best_ms(forward), best_ms(forward_backward), flops, D=d, I=i, E=e, N=n, T=t,
           matmul_gflops=matmul_gflops(n, d, i))  # one expert product; the @mllm reference is its 3·E expert products


if __name__ == "__main__":
    main()
