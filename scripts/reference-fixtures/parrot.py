"""Parrot fixture: AIDC-AI/Parrot's own `MultilingualMoE` (parrot/model/moe_model/moe.py) on seeded
tiny float64 configs.

    /usr/bin/python3 scripts/reference-fixtures/parrot.py /path/to/AIDC-AI/Parrot

The reference module handles one image and one text per call (`forward(input_embeds [T, D],
image_features [N, D])`); the fixture runs it per sample and stacks the samples, right-padding the
texts (`text_mask` marks the real tokens), which is how @mllm/parrot batches them. Written:
`packages/parrot/src/__fixtures__/reference/multilingual-moe*.safetensors` with the state dict under
the full-checkpoint names (`model.moe_model.*`), inputs `inputs.*`, outputs `expected.*`, and the
`config.json` keys the module reads as JSON metadata `config`.
"""
import importlib.util
import json
import os
import sys
import types

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import fixture_path, reference_root, seed, stub_module, write_safetensors  # noqa: E402

PREFIX = "model.moe_model."


def load_moe_module(root: str) -> types.ModuleType:
    # moe.py imports only `transformers.activations.ACT2FN`, for "silu".
    stub_module("transformers.activations", ACT2FN={"silu": F.silu})
    path = os.path.join(root, "parrot", "model", "moe_model", "moe.py")
    spec = importlib.util.spec_from_file_location("parrot_reference_moe", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def float32_exact(module: torch.nn.Module) -> None:
    """Round every parameter to a float32-representable value (kept in float64), so the port, which
    loads the fixture in float32, starts from exactly the reference's weights."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.float().double())


def run(moe_module, name: str, config: dict, text_lengths, num_tokens: int, seed_value: int) -> None:
    seed(seed_value)
    cfg = types.SimpleNamespace(**config)
    moe = moe_module.MultilingualMoE(cfg).double().eval()
    float32_exact(moe)
    D, B, T = config["moe_hidden_size"], len(text_lengths), max(text_lengths)
    visual = torch.randn(B, num_tokens, D).float().double()
    text = torch.zeros(B, T, D)
    mask = torch.zeros(B, T)
    for b, t in enumerate(text_lengths):
        text[b, :t] = torch.randn(t, D).float().double()
        mask[b, :t] = 1
    outputs, routing, attention = [], [], []
    # The module's two softmax calls, recorded as it makes them: the CLS→text attention [1, t], then
    # the routing weights [1, E] (the port returns both for monitoring).
    calls = []
    real_softmax = moe_module.F.softmax

    def recording_softmax(*args, **kwargs):
        out = real_softmax(*args, **kwargs)
        calls.append(out.detach().clone())
        return out

    moe_module.F = types.SimpleNamespace(**{**vars(F), "softmax": recording_softmax})
    try:
        with torch.no_grad():
            for b, t in enumerate(text_lengths):
                calls.clear()
                outputs.append(moe(text[b, :t], visual[b]))
                assert len(calls) == 2, f"expected the module's two softmax calls, saw {len(calls)}"
                row = torch.zeros(T)
                row[:t] = calls[0][0]
                attention.append(row)
                routing.append(calls[1][0])
    finally:
        moe_module.F = F
    tensors = {PREFIX + k: v for k, v in moe.state_dict().items()}
    tensors.update({
        "inputs.visual": visual, "inputs.text": text, "inputs.text_mask": mask,
        "expected.output": torch.stack(outputs), "expected.routing_weights": torch.stack(routing),
        "expected.text_attention": torch.stack(attention),
    })
    write_safetensors(fixture_path("parrot", name), tensors, {
        "config": json.dumps(config), "source": "AIDC-AI/Parrot parrot/model/moe_model/moe.py MultilingualMoE",
        "text_lengths": json.dumps(list(text_lengths)),
    })


def main() -> None:
    root = reference_root()
    moe_module = load_moe_module(root)
    base = {"num_experts": 3, "moe_hidden_size": 16, "moe_intermediate_size": 24, "use_moe": True,
            "use_moe_residual": True, "moe_top_k": 2, "mm_vision_select_feature": "cls_patch"}
    # trained α (moe_weight 0.1, written into config.json by initialize_moe_modules)
    run(moe_module, "multilingual-moe", {**base, "moe_weight": 0.1}, [5, 3, 1], 6, 0)
    # no moe_weight key: the module's getattr fallback gives α = 1.0
    run(moe_module, "multilingual-moe-no-moe-weight", base, [4, 2], 5, 1)
    # no residual
    run(moe_module, "multilingual-moe-no-residual", {**base, "moe_weight": 0.1, "use_moe_residual": False}, [3, 6], 4, 2)


if __name__ == "__main__":
    main()
