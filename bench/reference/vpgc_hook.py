"""VPG-C hook in PyTorch, written from the formula in packages/vpgc/README.md (not the authors' code):

  c_b = h[b, t_b];  g_b = c_b·W_qpᵀ + b_qp;  Q_k = query_tokens + g_{s(k)}
  O_k = QFormer(Q_k, ln_vision(F_k))   (BERT post-LN, queries only: LN(Q), then per layer
        self-attention → cross-attention every 2nd layer from layer 0 → query FFN, exact GELU)
  R_k = O_k·W_llmᵀ + b_llm;  h[s(k), start_k : start_k + Nq] += R_k

The Q-Former is frozen (no weight gradients); query_tokens, qformer_proj and llm_proj train.
Sizes as packages/vpgc/bench/hook.bench.ts: BLIP-2 Q-Former (12 × 768, 12 heads, FFN 3072, Dv 1408),
Nv 257, Nq 32, Dl 1024, hidden = the images' tokens + 32 text tokens.
Usage: python3 vpgc_hook.py [images [blip2|small]]
"""
import math
import sys

import torch
import torch.nn.functional as F

from common import best_ms, matmul_gflops, report, setup

SIZES = {
    "blip2": dict(D=768, layers=12, heads=12, ffn=3072, Dv=1408),
    "small": dict(D=384, layers=6, heads=6, ffn=1536, Dv=704),
}


class Attention(torch.nn.Module):
    def __init__(self, d, heads, kv_width):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value = torch.nn.Linear(d, d), torch.nn.Linear(kv_width, d), torch.nn.Linear(kv_width, d)
        self.dense, self.norm = torch.nn.Linear(d, d), torch.nn.LayerNorm(d, eps=1e-12)

    def forward(self, x, source):
        n, lq, d = x.shape
        lk, hd = source.shape[1], d // self.heads
        split = lambda t, length: t.view(n, length, self.heads, hd).transpose(1, 2)
        q, k, v = split(self.query(x), lq), split(self.key(source), lk), split(self.value(source), lk)
        context = ((q @ k.transpose(-1, -2)) / math.sqrt(hd)).softmax(-1) @ v
        return self.norm(self.dense(context.transpose(1, 2).reshape(n, lq, d)) + x)


class Layer(torch.nn.Module):
    def __init__(self, c, cross):
        super().__init__()
        self.self_attention = Attention(c["D"], c["heads"], c["D"])
        self.cross_attention = Attention(c["D"], c["heads"], c["Dv"]) if cross else None
        self.up, self.down = torch.nn.Linear(c["D"], c["ffn"]), torch.nn.Linear(c["ffn"], c["D"])
        self.norm = torch.nn.LayerNorm(c["D"], eps=1e-12)

    def forward(self, x, image):
        x = self.self_attention(x, x)
        if self.cross_attention is not None:
            x = self.cross_attention(x, image)
        return self.norm(self.down(F.gelu(self.up(x))) + x)


class QFormer(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.ln_vision = torch.nn.LayerNorm(c["Dv"])
        self.embeddings_norm = torch.nn.LayerNorm(c["D"], eps=1e-12)
        self.layers = torch.nn.ModuleList([Layer(c, i % 2 == 0) for i in range(c["layers"])])

    def forward(self, queries, features):
        image = self.ln_vision(features)
        x = self.embeddings_norm(queries)
        for layer in self.layers:
            x = layer(x, image)
        return x


def main():
    images = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    c = SIZES[sys.argv[2] if len(sys.argv) > 2 else "blip2"]
    nq, nv, dl = 32, 257, 1024
    setup()
    qformer = QFormer(c).requires_grad_(False)
    query_tokens = torch.nn.Parameter(torch.randn(1, nq, c["D"]) * 0.02)
    qformer_proj, llm_proj = torch.nn.Linear(dl, c["D"]), torch.nn.Linear(c["D"], dl)
    trainable = [query_tokens, *qformer_proj.parameters(), *llm_proj.parameters()]
    L = images * nq + 32
    hidden = torch.randn(1, L, dl)
    features = torch.randn(images, nv, c["Dv"])
    last = L - 1
    weights = torch.randn(1, L, dl)

    def hook():
        guidance = qformer_proj(hidden[:, last])  # [B, Dq]
        queries = (query_tokens + guidance[:, None]).expand(images, nq, c["D"])  # every image of sample 0: [n, Nq, Dq]
        out = llm_proj(qformer(queries, features))  # [n, Nq, Dl]
        residual = torch.zeros_like(hidden)
        residual[0, 16:16 + images * nq] = out.reshape(images * nq, dl)
        return hidden + residual

    def forward():
        with torch.no_grad():
            hook()

    def forward_backward():
        for p in trainable:
            p.grad = None
        (hook() * weights).sum().backward()

    D = c["D"]
    per_image = 0
    for i in range(c["layers"]):
        per_image += 2 * (4 * nq * D * D + 2 * nq * nq * D)
        if i % 2 == 0:
            per_image += 2 * (2 * nq * D * D + 2 * nv * c["Dv"] * D + 2 * nq * nv * D)
        per_image += 2 * (2 * nq * D * c["ffn"])
    per_image += 2 * nq * D * dl
    flops = images * per_image + 2 * dl * D
    side = round((flops / 2) ** (1 / 3))  # the @mllm bench's reference: one cube of equal FLOPs
    report(f"VPG-C hook ({images} image{'s' if images > 1 else ''})", best_ms(forward), best_ms(forward_backward), flops,
           images=images, D=D, layers=c["layers"], Dl=dl, matmul_gflops=matmul_gflops(side, side, side))


if __name__ == "__main__":
    main()
