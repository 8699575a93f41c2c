"""Shared timing helpers for the PyTorch reference benchmarks (written here, not the authors' code).

Each script prints one JSON line: {"module": ..., "forward_ms": ..., "forward_backward_ms": ..., "flops_forward": ...,
"matmul_gflops": ...}; the last is PyTorch's own plain 2-D matmul rate on the shape the @mllm bench uses as its
reference, so the module's throughput can be read against PyTorch's ceiling as well as against the backend's.
Run with Debian's python3-torch (OpenBLAS); threads fixed to 2 to match the machine.
"""
import json
import os
import time

import torch


def setup(threads: int = 2) -> None:
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", threads)))
    torch.manual_seed(0)


def best_ms(fn, repeats: int = 5, warmup: int = 2) -> float:
    repeats = int(os.environ.get("BENCH_REPEATS", repeats))
    warmup = int(os.environ.get("BENCH_WARMUP", warmup))
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return min(times)


def matmul_gflops(m: int, k: int, n: int) -> float:
    """PyTorch's plain 2-D product `[m, k]·[k, n]` (float32, no autograd): best-of GFLOP/s."""
    a, b = torch.randn(m, k), torch.randn(k, n)

    def product():
        with torch.no_grad():
            torch.mm(a, b)

    return 2 * m * k * n / best_ms(product) / 1e6


def report(module: str, forward_ms: float, forward_backward_ms: float, flops_forward: float, **extra) -> None:
    print(json.dumps({
        "module": module,
        "forward_ms": round(forward_ms, 2),
        "forward_backward_ms": round(forward_backward_ms, 2),
        "flops_forward": flops_forward,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        **extra,
    }))
