"""Wings parity fixtures computed by the authors' own modules (AIDC-AI/Wings).

    /usr/bin/python3 scripts/reference-fixtures/wings.py <Wings clone> <Bunny clone>

Imports, from the clones (nothing of them is copied here or committed):
  - Wings `wings/model/base_module.py`: `WingsAttention` (both learners) and `ReweightLinear` (the
    router; `wings_router_type linear`, the only router class the code has);
  - Wings `wings/model/modeling_wings_qwen2.py`: `wings_layer_forward` (the decoder layer with the
    learners and the router wired in, where the stage-2 update is added twice), `wings_forward` (the
    model loop: position ids, 4-D mask) and `WingsQwen2ForCausalLM.forward` (the text-key lists,
    their padding and `padding_length`);
  - Bunny `bunny/model/language_model/qwen2/modeling_qwen2.py` (the 4.37-era HF Qwen2 file Wings
    imports as `transformers.Qwen2*`): `Qwen2DecoderLayer` with eager `Qwen2Attention`.

Stand-ins for the `transformers` pieces they import (this file and `common.py`): `ACT2FN` (SiLU), empty classes for
types that are only named, and `AttentionMaskConverter.to_4d` (HF 4.37 semantics: causal and padding
keys set to the dtype minimum). The masks are built in float32: the reference soft-maxes in float32,
where a float64 dtype-minimum overflows to -inf and turns a fully masked row into NaN, while the
released bf16/fp32 runs (finite float32 minimum) give a uniform row, which is what the fixtures record.

Every module runs in float64 (torch default dtype), except where the authors' code itself casts to
float32 (the attention softmax, RMSNorm, the rotary frequencies).
"""
import importlib
import json
import os
import sys
import types

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (AttentionMaskConverter, Empty, PretrainedConfig, Registry, fixture_path, seed,  # noqa: E402
                    stub_module, stub_transformers_utils, write_safetensors)


def usage() -> None:
    raise SystemExit("usage: wings.py <path to a clone of AIDC-AI/Wings> <path to a clone of BAAI-DCAI/Bunny>")


if len(sys.argv) != 3 or not all(os.path.isdir(p) for p in sys.argv[1:]):
    usage()
WINGS = os.path.abspath(sys.argv[1])
BUNNY_QWEN2 = os.path.join(os.path.abspath(sys.argv[2]), "bunny", "model", "language_model", "qwen2")
if not os.path.isfile(os.path.join(WINGS, "wings", "model", "base_module.py")) or not os.path.isfile(os.path.join(BUNNY_QWEN2, "modeling_qwen2.py")):
    usage()


# ---- stand-ins for the imports (only what the imported files touch at import or in the calls made; the configs,
# the empty classes and `AttentionMaskConverter`, which builds its masks in float32, are `common.py`'s) ----
class _CausalLMBase:
    pass


def _install_stubs() -> None:
    stub_module("tqdm", tqdm=lambda x, *a, **k: x)
    stub_module("transformers.activations", ACT2FN={"silu": nn.SiLU()})
    stub_module("transformers.cache_utils", Cache=Empty, DynamicCache=Empty)
    stub_module("transformers.modeling_attn_mask_utils", AttentionMaskConverter=AttentionMaskConverter,
                _prepare_4d_causal_attention_mask=None, _prepare_4d_causal_attention_mask_for_sdpa=None)
    stub_module("transformers.modeling_outputs", BaseModelOutputWithPast=Empty, CausalLMOutputWithPast=Empty,
                SequenceClassifierOutputWithPast=Empty)
    stub_module("transformers.modeling_utils", PreTrainedModel=nn.Module)
    stub_module("transformers.configuration_utils", PretrainedConfig=PretrainedConfig)
    stub_transformers_utils()
    # Bunny's Qwen2 files as a package (they import each other relatively).
    stub_module("bunny_qwen2").__path__ = [BUNNY_QWEN2]
    qwen2 = importlib.import_module("bunny_qwen2.modeling_qwen2")
    stub_module("transformers", Qwen2Config=qwen2.Qwen2Config, Qwen2Model=qwen2.Qwen2Model,
                Qwen2ForCausalLM=_CausalLMBase, AutoConfig=Registry, AutoModelForCausalLM=Registry, Trainer=Empty)
    # The Wings package without its __init__ (which imports every model class and the vision towers).
    stub_module("wings").__path__ = [os.path.join(WINGS, "wings")]
    stub_module("wings.model").__path__ = [os.path.join(WINGS, "wings", "model")]
    stub_module("wings.model.base_architecture", LlavaMetaModel=Empty, WingsMetaForCausalLM=Empty)


_install_stubs()
qwen2 = importlib.import_module("bunny_qwen2.modeling_qwen2")
base_module = importlib.import_module("wings.model.base_module")
wings_qwen2 = importlib.import_module("wings.model.modeling_wings_qwen2")


# ---- tiny config ----
H, HEADS, RANK, INTER, THETA, ROUTER_MAX, SP, N_IMG = 8, 2, 3, 12, 10000.0, 16, 2, 3


def config():
    c = qwen2.Qwen2Config(vocab_size=32, hidden_size=H, intermediate_size=INTER, num_hidden_layers=1,
                          num_attention_heads=HEADS, num_key_value_heads=HEADS, hidden_act="silu",
                          max_position_embeddings=32, rms_norm_eps=1e-6, rope_theta=THETA, attention_dropout=0.0,
                          use_sliding_window=False, sliding_window=None)
    c._attn_implementation = "eager"
    c.lora_dim = RANK
    return c


CONFIG_JSON = {"hidden_size": H, "num_attention_heads": HEADS, "num_key_value_heads": HEADS, "lora_dim": RANK,
               "intermediate_size": INTER, "rope_theta": THETA, "rms_norm_eps": 1e-6, "router_max_length": ROUTER_MAX,
               "system_prompt_length": SP, "image_token_length": N_IMG, "hidden_act": "silu"}


def randomize(module: nn.Module, scale: float = 0.4) -> None:
    """Every parameter random (the authors' init zeroes the up-projections, which would test nothing);
    RMSNorm weights around 1."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("layernorm.weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(scale * torch.randn_like(p))


def state(module: nn.Module, prefix: str = ""):
    return {prefix + k: v.detach().clone() for k, v in module.state_dict().items()}


def random_probs(bsz, heads, lq, lk, causal=True):
    logits = 2 * torch.randn(bsz, heads, lq, lk)
    if causal:
        logits = logits.masked_fill(torch.triu(torch.ones(lq, lk, dtype=torch.bool), diagonal=1), float("-inf"))
    return logits.softmax(-1)


# ---- WingsAttention, both learners ----
def wings_attention() -> None:
    seed(1)
    c = config()
    visual, textual = base_module.WingsAttention(c, 0), base_module.WingsAttention(c, 0)
    randomize(visual)
    randomize(textual)
    visual.eval()
    textual.eval()
    B, L = 2, 6
    query = torch.randn(B, L, H)
    pos_q = torch.arange(L).unsqueeze(0).repeat(B, 1)
    # Visual learner: image tokens at [2, 5) in sample 0 and [1, 4) in sample 1, no mask (as wired).
    image = torch.randn(B, N_IMG, H)
    pos_image = torch.tensor([[2, 3, 4], [1, 2, 3]])
    out_v, probs_v, _ = visual(query=query, key=image, value=image, attention_mask=None, position_ids_q=pos_q,
                               position_ids_image=pos_image, output_attentions=True)
    # Textual learner: 5 keys per sample (sample 0 right-padded by repeating its last index), the model's
    # 4-D mask (sample 1 has one padding token) and padding_length [2, 0]: the last 2 query rows of
    # sample 0 fully masked (uniform).
    pos_text = torch.tensor([[0, 1, 5, 5, 5], [0, 1, 2, 3, 4]])
    text = torch.stack([query[b, pos_text[b]] for b in range(B)]) * 0.7
    mask2d = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0]])
    mask4d = AttentionMaskConverter(True).to_4d(mask2d, L, L, torch.float32)
    out_t, probs_t, _ = textual(query=query, key=text, value=text, attention_mask=mask4d, position_ids_q=pos_q,
                                position_ids_image=pos_text, output_attentions=True, padding_length=[2, 0])
    tensors = {**state(visual, "attn_pool."), **state(textual, "attn_t_pool."),
               "inputs.query": query, "inputs.query_positions": pos_q.to(torch.int32),
               "inputs.visual.source": image, "inputs.visual.key_positions": pos_image.to(torch.int32),
               "inputs.textual.source": text, "inputs.textual.key_positions": pos_text.to(torch.int32),
               "inputs.textual.attention_mask_4d": mask4d, "inputs.textual.padding_length": torch.tensor([2, 0], dtype=torch.int32),
               "outputs.visual": out_v, "outputs.visual_probs": probs_v,
               "outputs.textual": out_t, "outputs.textual_probs": probs_t}
    write_safetensors(fixture_path("wings", "wings-attention"), tensors,
                      {"config": json.dumps(CONFIG_JSON), "source": "wings/model/base_module.py WingsAttention"})


# ---- ReweightLinear ----
def reweight_linear() -> None:
    seed(2)
    router = base_module.ReweightLinear(ROUTER_MAX)
    randomize(router, 1.0)
    probs = random_probs(2, HEADS, 7, 7)
    visual, textual = router(probs)
    tensors = {**state(router), "inputs.attention_probs": probs, "outputs.visual": visual, "outputs.textual": textual}
    write_safetensors(fixture_path("wings", "reweight-linear"), tensors,
                      {"config": json.dumps(CONFIG_JSON), "source": "wings/model/base_module.py ReweightLinear"})


# ---- one decoder layer wired by modeling_wings_qwen2.py ----
def decoder_layer(name: str, seed_value: int, images: dict, mask2d) -> None:
    """`images`: sample -> start of its one image (N_IMG tokens); samples not listed are text only (the
    reference gives them a dummy image; here its features are zero, so its visual term is exactly 0)."""
    seed(seed_value)
    c = config()
    layer = qwen2.Qwen2DecoderLayer(c, 0)
    layer.attn_pool = base_module.WingsAttention(c, 0)
    layer.attn_t_pool = base_module.WingsAttention(c, 0)
    layer.reweight_module = base_module.ReweightLinear(ROUTER_MAX)
    randomize(layer)
    layer.eval()
    layer.forward = wings_qwen2.wings_layer_forward(layer)

    B, L = mask2d.shape
    embeds = torch.randn(B, L, H)
    image_features = torch.zeros(B, N_IMG, H)
    i_t_indices = []
    for b in range(B):
        if b in images:
            start = images[b]
            image_features[b] = torch.randn(N_IMG, H)
            embeds[b, start:start + N_IMG] = image_features[b]
            i_t_indices.append([("t", start), ("i", N_IMG), ("t", L - start - N_IMG)])
        else:
            i_t_indices.append([("t", L), ("i", -1)])

    # The model: the authors' loop (`wings_forward`) over this one layer, final norm left out.
    model = types.SimpleNamespace(
        config=types.SimpleNamespace(output_attentions=False, output_hidden_states=False, use_cache=False,
                                     use_return_dict=False, sliding_window=None),
        _attn_implementation="eager", layers=[layer], gradient_checkpointing=False, training=False,
        norm=nn.Identity(), embed_tokens=None)
    model_forward = wings_qwen2.wings_forward(model)
    captured = {}

    def run_model(**kwargs):
        captured.update(kwargs)
        captured["outputs"] = model_forward(**kwargs)
        return captured["outputs"]

    # The causal LM's forward (text-key lists, padding_length), with LLaVA's splicing stood in by the values above.
    lm = types.SimpleNamespace(
        config=types.SimpleNamespace(image_token_length=N_IMG, system_prompt_length=SP, vocab_size=H),
        prepare_multimodal_inputs=lambda *a, **k: (None, None, mask2d, None, embeds, None, i_t_indices, image_features),
        model=run_model, lm_head=nn.Identity())
    with torch.no_grad():
        wings_qwen2.WingsQwen2ForCausalLM.forward(lm, input_ids=None, images=None, return_dict=False)
    hidden = captured["outputs"][0]  # the layer's output (the causal LM casts its logits to float32)
    padding = captured["padding_length"]
    tensors = {**state(layer), "inputs.inputs_embeds": embeds, "inputs.attention_mask": mask2d.to(torch.int32),
               "inputs.image_features": image_features,
               "inputs.image_starts": torch.tensor([images.get(b, -1) for b in range(B)], dtype=torch.int32),
               "captured.position_ids_text": captured["position_ids_text"].to(torch.int32),
               "captured.position_ids_image": captured["position_ids_image"].to(torch.int32),
               "outputs.hidden_states": hidden}
    meta = {"config": json.dumps(CONFIG_JSON), "padding_length": json.dumps(padding),
            "source": "wings/model/modeling_wings_qwen2.py wings_layer_forward + Bunny Qwen2DecoderLayer (eager)"}
    write_safetensors(fixture_path("wings", name), tensors, meta)


if __name__ == "__main__":
    wings_attention()
    reweight_linear()
    # Both samples have an image: equal text-key counts, padding_length None; sample 1 right-padded.
    decoder_layer("decoder-layer-images", 3, {0: 3, 1: 2}, torch.tensor([[1] * 10, [1] * 8 + [0] * 2]))
    # An image sample and a text-only sample: text keys padded, padding_length [5, 0].
    decoder_layer("decoder-layer-mixed", 4, {0: 3}, torch.tensor([[1] * 10, [1] * 9 + [0]]))
