"""HF LLaMA / Qwen2 decoder parity fixtures computed by HF's own modeling code, as Bunny vendors it.

    /usr/bin/python3 scripts/reference-fixtures/hf_decoders.py <Bunny clone>

Imports, from the clone (nothing of it is copied here or committed):
  - `bunny/model/language_model/qwen2/modeling_qwen2.py` (HF 4.37 Qwen2): `Qwen2DecoderLayer` (eager
    `Qwen2Attention` with grouped KV heads, q/k/v bias, `Qwen2RotaryEmbedding`), `Qwen2RMSNorm`, `Qwen2Config`;
  - `bunny/model/language_model/llama/modeling_llama.py` (HF 4.38 LLaMA): `LlamaDecoderLayer` (eager
    `LlamaAttention`, rotary with `rope_scaling` `linear` / `dynamic`), `LlamaRMSNorm`, `LlamaConfig`.

The model loop is the few lines every HF `*Model.forward` runs and is written here: embedding lookup (or the
given `inputs_embeds`), the 4-D additive mask (HF `AttentionMaskConverter.to_4d`: causal and padding keys at
the float32 minimum), `position_ids` as HF's `generate` makes them (`cumsum(mask) - 1`, padding set to 1) unless
given, the layers, the final norm and `lm_head` (or the embedding matrix when `tie_word_embeddings`).

The vendored LLaMA file predates `rope_scaling` type `llama3`; for it the fixture builds the LLaMA model without
scaling and writes into every layer's `rotary_emb.inv_freq` the llama3 frequencies from `llama3_inv_freq`
below, a float64 numpy statement of the published formula (LLaMA 3.1: wavelengths above
`original_max_position_embeddings / low_freq_factor` divided by `factor`, below `... / high_freq_factor` kept,
in between interpolated linearly in `original_max_position_embeddings / wavelength`).

Every checkpoint is written in F32 (as a released checkpoint would be) and the reference runs in float64 on
those F32 values (torch default dtype float64), except where HF itself works in float32 (rotary angles,
the attention softmax, RMSNorm's variance). Written under `packages/models/src/hf/__fixtures__/<name>/`:
`config.json` (snake_case, as checkpoints ship it), `model.safetensors` (or two shards and
`model.safetensors.index.json`) and `expected.safetensors` (inputs and logits, see `write_expected`).
"""
import importlib
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (ROOT, Empty, PretrainedConfig, seed, stub_module, stub_transformers_utils, write_json,  # noqa: E402
                    write_safetensors, write_safetensors_shards)

USAGE = "usage: hf_decoders.py <path to a clone of BAAI-DCAI/Bunny>"
OUT = os.path.join(ROOT, "packages", "models", "src", "hf", "__fixtures__")
LM = None
qwen2 = llama = None  # the vendored modeling modules, set by `load`


# ---- stand-ins for the `transformers` imports (only what the two files touch at import or in the calls made;
# the config bag and the empty classes are `common.py`'s) ----
def _install_stubs() -> None:
    stub_module("transformers.activations", ACT2FN={"silu": nn.SiLU()})
    stub_module("transformers.cache_utils", Cache=Empty, DynamicCache=Empty, StaticCache=Empty)
    stub_module("transformers.modeling_attn_mask_utils", AttentionMaskConverter=Empty,
                _prepare_4d_causal_attention_mask=None, _prepare_4d_causal_attention_mask_for_sdpa=None)
    stub_module("transformers.modeling_outputs", BaseModelOutputWithPast=Empty, CausalLMOutputWithPast=Empty,
                SequenceClassifierOutputWithPast=Empty, QuestionAnsweringModelOutput=Empty)
    stub_module("transformers.modeling_utils", PreTrainedModel=nn.Module)
    stub_module("transformers.pytorch_utils", ALL_LAYERNORM_LAYERS=[])
    stub_module("transformers.configuration_utils", PretrainedConfig=PretrainedConfig)
    stub_transformers_utils()
    # The vendored folders as packages (their files import each other relatively).
    stub_module("bunny_qwen2").__path__ = [os.path.join(LM, "qwen2")]
    stub_module("bunny_llama").__path__ = [os.path.join(LM, "llama")]


def load(bunny_root: str) -> None:
    """Installs the stand-ins and imports the vendored HF Qwen2 / LLaMA modeling files from a Bunny clone (also
    what `llava.py` calls to reuse `Reference` below)."""
    global LM, qwen2, llama
    if not os.path.isfile(os.path.join(bunny_root, "bunny", "model", "language_model", "llama", "modeling_llama.py")):
        raise SystemExit(USAGE)
    LM = os.path.join(os.path.abspath(bunny_root), "bunny", "model", "language_model")
    _install_stubs()
    qwen2 = importlib.import_module("bunny_qwen2.modeling_qwen2")
    llama = importlib.import_module("bunny_llama.modeling_llama")

# ---- tiny shapes ----
V, H, HEADS, KV_HEADS, LAYERS, INTER = 64, 32, 4, 2, 2, 48
HEAD_DIM = H // HEADS


def llama3_inv_freq(theta: float, dim: int, factor: float, low: float, high: float, original: int) -> np.ndarray:
    """float64 llama3 frequencies: λ = 2π / f per base frequency f = θ^(−2i/d);
    λ < original/high: f;  λ > original/low: f / factor;  else (1 − s)·f/factor + s·f with
    s = (original/λ − low) / (high − low)."""
    base = 1.0 / theta ** (np.arange(0, dim, 2, dtype=np.float64) / dim)
    out = np.empty_like(base)
    for i, f in enumerate(base):
        wavelength = 2 * math.pi / f
        if wavelength < original / high:
            out[i] = f
        elif wavelength > original / low:
            out[i] = f / factor
        else:
            s = (original / wavelength - low) / (high - low)
            out[i] = (1 - s) * f / factor + s * f
    return out


class Reference(nn.Module):
    """HF's decoder layers and norm (vendored classes) with the model loop written out (see the file comment)."""

    def __init__(self, family: str, config, tie: bool):
        super().__init__()
        mod = qwen2 if family == "qwen2" else llama
        Layer = mod.Qwen2DecoderLayer if family == "qwen2" else mod.LlamaDecoderLayer
        Norm = mod.Qwen2RMSNorm if family == "qwen2" else mod.LlamaRMSNorm
        self.embed_tokens = nn.Embedding(V, H)
        self.layers = nn.ModuleList([Layer(config, i) for i in range(LAYERS)])
        self.norm = Norm(H, eps=config.rms_norm_eps)
        self.lm_head = None if tie else nn.Linear(H, V, bias=False)

    def forward(self, mask2d, input_ids=None, inputs_embeds=None, position_ids=None):
        h = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        B, L = mask2d.shape
        if position_ids is None:  # HF generate's prepare_inputs_for_generation
            position_ids = mask2d.long().cumsum(-1) - 1
            position_ids.masked_fill_(mask2d == 0, 1)
        blocked = torch.triu(torch.ones(L, L, dtype=torch.bool), diagonal=1)[None, None] | (mask2d[:, None, None, :] == 0)
        mask4d = torch.zeros(B, 1, L, L, dtype=torch.float32).masked_fill(blocked, torch.finfo(torch.float32).min)
        for layer in self.layers:
            h = layer(h, attention_mask=mask4d, position_ids=position_ids)[0]
        h = self.norm(h)
        return self.lm_head(h) if self.lm_head is not None else h @ self.embed_tokens.weight.T


def randomize(model: nn.Module) -> None:
    """Random weights rounded to float32 (what the F32 checkpoint stores), norms around 1."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            value = 1 + 0.2 * torch.randn_like(p) if name.endswith("norm.weight") else 0.15 * torch.randn_like(p)
            p.copy_(value.float().double())


def checkpoint_tensors(model: Reference, with_inv_freq: bool):
    tensors = {}
    for name, value in model.state_dict().items():
        if "rotary_emb" in name or name.endswith("_cached"):
            continue
        key = name if name.startswith("lm_head") else "model." + name
        tensors[key] = value.float()
    if with_inv_freq:  # older LLaMA checkpoints carry the buffer (persistent in HF < 4.31)
        for i, layer in enumerate(model.layers):
            tensors[f"model.layers.{i}.self_attn.rotary_emb.inv_freq"] = layer.self_attn.rotary_emb.inv_freq.float()
    return tensors


def write_checkpoint(name: str, config_json: dict, tensors: dict, shards: int = 1) -> None:
    directory = os.path.join(OUT, name)
    write_json(os.path.join(directory, "config.json"), config_json)
    if shards == 1:
        write_safetensors(os.path.join(directory, "model.safetensors"), tensors, {"format": "pt"})
    else:
        write_safetensors_shards(directory, tensors, shards)


def write_expected(name: str, model: Reference, source: str, L: int = 7) -> None:
    """Inputs and logits of one checkpoint:
    - `inputs.input_ids` / `inputs.attention_mask` `[2, L]`: sample 0 left-padded by 3 (pad id 0), sample 1 full;
      `expected.logits` `[2, L, V]` with HF's generate positions;
    - `inputs.next_ids` `[2, 1]`, `expected.next_logits` `[2, 1, V]`: one decode step (the full forward of the
      L + 1 tokens, last row: what HF's KV cache computes);
    - `inputs.inputs_embeds` `[2, L, H]` with `inputs.embeds_mask` (sample 1 right-padded by 2),
      `expected.embeds_logits`;
    - `inputs.inner_mask` (sample 0 with padding at 2–3 inside the sequence) with explicit
      `inputs.inner_position_ids` (0..L−1: counting through the padding), `expected.inner_logits`."""
    B = 2
    ids = torch.randint(1, V, (B, L))
    mask = torch.ones(B, L, dtype=torch.long)
    mask[0, :3] = 0
    ids[0, :3] = 0
    with torch.no_grad():
        logits = model(mask, input_ids=ids)
        next_ids = torch.randint(1, V, (B, 1))
        next_logits = model(torch.cat([mask, torch.ones(B, 1, dtype=torch.long)], 1), input_ids=torch.cat([ids, next_ids], 1))[:, -1:]
        embeds = 0.5 * torch.randn(B, L, H)
        embeds_mask = torch.ones(B, L, dtype=torch.long)
        embeds_mask[1, L - 2:] = 0
        embeds_logits = model(embeds_mask, inputs_embeds=embeds)
        inner_mask = torch.ones(B, L, dtype=torch.long)
        inner_mask[0, 2:4] = 0
        inner_positions = torch.arange(L).unsqueeze(0).repeat(B, 1)
        inner_logits = model(inner_mask, input_ids=ids.masked_fill(ids == 0, 5), position_ids=inner_positions)
    i32 = lambda t: t.to(torch.int32)  # noqa: E731
    tensors = {"inputs.input_ids": i32(ids), "inputs.attention_mask": i32(mask), "expected.logits": logits,
               "inputs.next_ids": i32(next_ids), "expected.next_logits": next_logits,
               "inputs.inputs_embeds": embeds, "inputs.embeds_mask": i32(embeds_mask), "expected.embeds_logits": embeds_logits,
               "inputs.inner_input_ids": i32(ids.masked_fill(ids == 0, 5)), "inputs.inner_mask": i32(inner_mask),
               "inputs.inner_position_ids": i32(inner_positions), "expected.inner_logits": inner_logits}
    write_safetensors(os.path.join(OUT, name, "expected.safetensors"), tensors, {"source": source})


def base_json(model_type: str, **extra) -> dict:
    return {"model_type": model_type, "architectures": ["Qwen2ForCausalLM" if model_type == "qwen2" else "LlamaForCausalLM"],
            "vocab_size": V, "hidden_size": H, "intermediate_size": INTER, "num_hidden_layers": LAYERS,
            "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS, "hidden_act": "silu",
            "torch_dtype": "float32", **extra}


def qwen2_fixture() -> None:
    seed(11)
    cj = base_json("qwen2", max_position_embeddings=64, rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=False,
                   use_sliding_window=False, sliding_window=None, attention_dropout=0.0, bos_token_id=1, eos_token_id=2)
    c = qwen2.Qwen2Config(**{k: v for k, v in cj.items() if k not in ("model_type", "architectures", "torch_dtype")})
    c._attn_implementation = "eager"
    model = Reference("qwen2", c, tie=False)
    randomize(model)
    model.eval()
    write_checkpoint("qwen2", cj, checkpoint_tensors(model, False), shards=2)
    write_expected("qwen2", model, "bunny/model/language_model/qwen2/modeling_qwen2.py Qwen2DecoderLayer (HF 4.37)")


def llama_config(cj: dict, rope_scaling):
    keys = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
            "hidden_act", "max_position_embeddings", "rms_norm_eps", "rope_theta", "tie_word_embeddings", "attention_bias")
    c = llama.LlamaConfig(**{k: cj[k] for k in keys}, rope_scaling=rope_scaling, attention_dropout=0.0)
    c._attn_implementation = "eager"
    return c


def llama_linear_fixture() -> None:
    """Tied embeddings (no `lm_head.weight` in the file), `rope_scaling` linear ×2, and the per-layer
    `rotary_emb.inv_freq` buffers older LLaMA checkpoints carry."""
    seed(12)
    cj = base_json("llama", max_position_embeddings=64, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True,
                   attention_bias=False, rope_scaling={"type": "linear", "factor": 2.0}, bos_token_id=1, eos_token_id=2)
    model = Reference("llama", llama_config(cj, cj["rope_scaling"]), tie=True)
    randomize(model)
    model.eval()
    write_checkpoint("llama-linear", cj, checkpoint_tensors(model, True))
    write_expected("llama-linear", model, "bunny/model/language_model/llama/modeling_llama.py LlamaDecoderLayer (HF 4.38), rope_scaling linear")


def llama_dynamic_fixture() -> None:
    """Dynamic NTK ×2 with max_position_embeddings 6 < the 7 / 8 positions of the inputs (so the base grows),
    q/k/v/o bias (`attention_bias`). A fresh model per call: HF's dynamic rotary keeps the largest frequencies
    it has seen in a buffer, the fixture records each call from the checkpoint state."""
    seed(13)
    cj = base_json("llama", max_position_embeddings=6, rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False,
                   attention_bias=True, rope_scaling={"type": "dynamic", "factor": 2.0})
    model = Reference("llama", llama_config(cj, cj["rope_scaling"]), tie=False)
    randomize(model)
    model.eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}

    class Fresh(nn.Module):
        def forward(self, *args, **kwargs):
            fresh = Reference("llama", llama_config(cj, cj["rope_scaling"]), tie=False)
            fresh.load_state_dict(state)
            fresh.eval()
            return fresh(*args, **kwargs)

    write_checkpoint("llama-dynamic", cj, checkpoint_tensors(model, False))
    write_expected("llama-dynamic", Fresh(), "bunny/model/language_model/llama/modeling_llama.py LlamaDecoderLayer (HF 4.38), rope_scaling dynamic")


def llama3_fixture() -> None:
    """LLaMA-3.1-style: theta 500000 is replaced by 10000 so that head_dim 8 covers all three llama3 branches
    with original_max_position_embeddings 128, low 1, high 16 (wavelengths 6.3 kept, 62.8 interpolated,
    628 and 6283 divided by 8)."""
    seed(14)
    scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 16.0,
               "original_max_position_embeddings": 128}
    cj = base_json("llama", max_position_embeddings=1024, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                   attention_bias=False, rope_scaling=scaling, bos_token_id=1, eos_token_id=2)
    model = Reference("llama", llama_config(cj, None), tie=False)
    inv_freq = torch.from_numpy(llama3_inv_freq(10000.0, HEAD_DIM, 8.0, 1.0, 16.0, 128)).float()
    for layer in model.layers:
        layer.self_attn.rotary_emb.inv_freq.copy_(inv_freq)
    randomize(model)
    model.eval()
    write_checkpoint("llama3", cj, checkpoint_tensors(model, False))
    write_expected("llama3", model, "modeling_llama.py LlamaDecoderLayer (HF 4.38) with llama3 inv_freq (float64 formula in this script)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(USAGE)
    load(sys.argv[1])
    qwen2_fixture()
    llama_linear_fixture()
    llama_dynamic_fixture()
    llama3_fixture()
