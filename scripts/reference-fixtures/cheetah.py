"""Cheetah / VPG-C fixture: DCDmllm/Cheetah's own Q-Former (`cheetah/models/Qformer.py`,
`BertLMHeadModel` stripped of its text side as `Cheetah_Vicuna.__init__` strips it) and its VPG-C
hook as `LlamaModel.forward` in `cheetah/models/modeling_llama.py` computes it, on seeded tiny float64
configs.

    /usr/bin/python3 scripts/reference-fixtures/cheetah.py /path/to/DCDmllm/Cheetah

Two passes, as `Cheetah_Vicuna.forward` makes them:
1. the VPG (`encode_img` without the ViT): `V = llama_proj(Qformer.bert(query_tokens, ln_vision(F)))`;
2. the authors' `LlamaModel.forward` (2 tiny decoder layers, `update_layer` 1) with
   `set_qformer_and_proj(...)`, `image_position_list`, `input_part_targets_len` and
   `all_image_embeds = ln_vision(F)`: forward hooks record the hidden states entering layer
   `update_layer` before and after the hook's in-place `+=` on the image spans.
`ln_vision` is `torch.nn.LayerNorm(eps 1e-5)`: Cheetah's `blip2.LayerNorm` is that module with a cast
to float32 around it (for fp16), which a float64 fixture leaves out.

Written: `packages/vpgc/src/__fixtures__/reference/cheetah-vpgc.safetensors` with the Cheetah checkpoint
names (`ln_vision.*`, `Qformer.bert.*`, `query_tokens`, `llama_proj.*`, `llama_model.model.{query_tokens,
qformer_proj.*, llm_proj.*}`), inputs `inputs.*`, outputs `expected.*`, and the sizes as JSON metadata
`config`. Every weight and input is rounded to a float32-representable value first (kept in float64).
"""
import importlib.util
import json
import os
import sys
import types
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import fixture_path, reference_root, seed, stub_module, write_safetensors  # noqa: E402


# ---------------------------------------------------------------- minimal `transformers` stand-ins
class ModelOutput(OrderedDict):
    """Attribute and index access over the non-None fields, in order (what the authors' code uses)."""

    def __init__(self, **kwargs):
        super().__init__((k, v) for k, v in kwargs.items() if v is not None)
        self.__dict__.update(kwargs)

    def __getitem__(self, key):
        return list(self.values())[key] if isinstance(key, int) else super().__getitem__(key)


class Config(types.SimpleNamespace):
    """`BertConfig` / `LlamaConfig` stand-in: the fields the authors' modules read."""

    def __init__(self, **kwargs):
        defaults = dict(output_attentions=False, output_hidden_states=False, use_return_dict=True, use_cache=False,
                        chunk_size_feed_forward=0, pad_token_id=0, initializer_range=0.02,
                        position_embedding_type="absolute", gradient_checkpointing=False)
        super().__init__(**{**defaults, **kwargs})


class PreTrainedModel(nn.Module):
    """What `transformers.PreTrainedModel` gives these modules: config, init, `dtype`, masks."""

    def __init__(self, config, *args, **kwargs):
        super().__init__()
        self.config = config

    def init_weights(self):
        self.apply(self._init_weights)

    def post_init(self):
        self.init_weights()

    @property
    def dtype(self):
        return next(self.parameters()).dtype

    def get_head_mask(self, head_mask, num_hidden_layers):
        assert head_mask is None
        return [None] * num_hidden_layers

    def invert_attention_mask(self, mask):
        # transformers' ModuleUtilsMixin.invert_attention_mask: (1 - mask) · finfo.min, broadcast to heads
        extended = mask[:, None, None, :] if mask.dim() == 2 else mask[:, None, :, :]
        extended = extended.to(dtype=self.dtype)
        return (1.0 - extended) * torch.finfo(self.dtype).min


def apply_chunking_to_forward(forward_fn, chunk_size, chunk_dim, *input_tensors):
    assert chunk_size == 0, "the fixture configs use chunk_size_feed_forward = 0 (no chunking)"
    return forward_fn(*input_tensors)


def identity_decorator(*args, **kwargs):
    return lambda fn: fn


class Logger:
    def warning_once(self, *args, **kwargs):
        pass

    warning = info = warning_once


def install_transformers_stubs() -> None:
    outputs = ["BaseModelOutputWithPastAndCrossAttentions", "BaseModelOutputWithPoolingAndCrossAttentions",
               "CausalLMOutputWithCrossAttentions", "MaskedLMOutput", "MultipleChoiceModelOutput",
               "NextSentencePredictorOutput", "QuestionAnsweringModelOutput", "SequenceClassifierOutput",
               "TokenClassifierOutput", "BaseModelOutputWithPast", "CausalLMOutputWithPast",
               "SequenceClassifierOutputWithPast"]
    stub_module("transformers.activations", ACT2FN={"gelu": F.gelu, "silu": F.silu})  # HF "gelu" = exact erf GELU
    stub_module("transformers.file_utils", ModelOutput=ModelOutput)
    stub_module("transformers.modeling_outputs", **{name: type(name, (ModelOutput,), {}) for name in outputs})
    stub_module("transformers.modeling_utils", PreTrainedModel=PreTrainedModel, apply_chunking_to_forward=apply_chunking_to_forward,
                find_pruneable_heads_and_indices=None, prune_linear_layer=None)
    stub_module("transformers.utils", logging=types.SimpleNamespace(get_logger=lambda name: Logger()),
                add_start_docstrings=identity_decorator, add_start_docstrings_to_model_forward=identity_decorator,
                replace_return_docstrings=identity_decorator)
    stub_module("transformers.models.bert.configuration_bert", BertConfig=Config)
    stub_module("transformers.models.llama.configuration_llama", LlamaConfig=Config)


def load(root: str, filename: str, name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, os.path.join(root, "Cheetah", "cheetah", "models", filename))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def randomize(module: nn.Module, std: float = 0.3) -> None:
    """Seeded non-trivial values for every parameter (LayerNorm weights around 1), float32-exact."""
    with torch.no_grad():
        for sub in module.modules():
            is_norm = isinstance(sub, nn.LayerNorm) or type(sub).__name__.endswith("RMSNorm")
            for name, p in sub.named_parameters(recurse=False):
                if is_norm:
                    value = 1.0 + 0.1 * torch.randn_like(p) if name == "weight" else 0.1 * torch.randn_like(p)
                else:
                    value = std * torch.randn_like(p)
                p.copy_(value.float().double())


def f32(x: torch.Tensor) -> torch.Tensor:
    return x.float().double()


def visual_qformer(qformer_module: types.ModuleType, config: Config) -> nn.Module:
    """`Blip2Base.init_Qformer`'s `BertLMHeadModel` with its text side removed as `Cheetah_Vicuna.__init__` removes it
    (no LM head, no word / position embeddings, no text feed-forward in the layers)."""
    Qformer = qformer_module.BertLMHeadModel(config=config)
    Qformer.cls = None
    Qformer.bert.embeddings.word_embeddings = None
    Qformer.bert.embeddings.position_embeddings = None
    for layer in Qformer.bert.encoder.layer:
        layer.output = None
        layer.intermediate = None
    return Qformer


def main() -> None:
    root = reference_root()
    install_transformers_stubs()
    qformer_module = load(root, "Qformer.py", "cheetah_reference_qformer")
    llama_module = load(root, "modeling_llama.py", "cheetah_reference_llama")
    seed(0)

    Nq, Dq, Dv, Nv, H = 4, 16, 12, 5, 24  # Nv = CLS + 4 patches
    qformer_config = dict(vocab_size=30, hidden_size=Dq, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                          hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                          max_position_embeddings=32, layer_norm_eps=1e-12, encoder_width=Dv,
                          add_cross_attention=True, cross_attention_freq=2, query_length=Nq)
    llama_config = dict(vocab_size=40, hidden_size=H, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                        hidden_act="silu", max_position_embeddings=64, rms_norm_eps=1e-6)
    update_layer = 1

    # The VPG as Blip2Base.init_Qformer + Cheetah_Vicuna.__init__ build it (text side removed).
    Qformer = visual_qformer(qformer_module, Config(**qformer_config))
    ln_vision = nn.LayerNorm(Dv, eps=1e-5)
    query_tokens = nn.Parameter(torch.zeros(1, Nq, Dq))
    llama_proj = nn.Linear(Dq, H)
    # VPG-C's tensors (Cheetah_Vicuna.__init__: zero-initialised projections, new queries; random here)
    new_query_tokens = nn.Parameter(torch.zeros(1, Nq, Dq))
    qformer_proj = nn.Linear(H, Dq)
    llm_proj = nn.Linear(Dq, H)
    for module in [Qformer, ln_vision, llama_proj, qformer_proj, llm_proj]:
        randomize(module)
    with torch.no_grad():
        query_tokens.copy_(f32(0.5 * torch.randn(1, Nq, Dq)))
        new_query_tokens.copy_(f32(0.5 * torch.randn(1, Nq, Dq)))
    Qformer.eval()  # dropout off: the fixture is the deterministic function (the reference never calls .eval())

    llama = llama_module.LlamaModel(Config(**llama_config)).eval()
    randomize(llama, std=0.2)
    llama.set_qformer_and_proj(Qformer, qformer_proj, llm_proj, new_query_tokens)

    # A batch of B = 2 prompts with 2 images each at the same positions (the reference's layout:
    # `image_position_list` is shared by the batch), guidance token per sample (input_part_targets_len).
    B, n_img, L = 2, 2, 16
    image_position_list = [(2, 2 + Nq), (8, 8 + Nq)]
    input_part_targets_len = torch.tensor([13, 11])
    features = f32(torch.randn(B, n_img, Nv, Dv))  # raw vision features (ViT output)
    inputs_embeds = f32(0.5 * torch.randn(B, L, H))

    with torch.no_grad():
        # 1. encode_img without the ViT, per image
        image_embeds = ln_vision(features.reshape(B * n_img, Nv, Dv))  # [B·n, Nv, Dv]
        query_output = Qformer.bert(query_embeds=query_tokens.expand(B * n_img, -1, -1), encoder_hidden_states=image_embeds,
                                    encoder_attention_mask=torch.ones(image_embeds.size()[:-1], dtype=torch.long), return_dict=True)
        qformer_out = query_output.last_hidden_state  # [B·n, Nq, Dq]
        vpg_out = llama_proj(qformer_out)  # [B·n, Nq, H]

        # 2. the authors' LlamaModel.forward with the VPG-C hook at update_layer
        captured = {}
        before = llama.layers[update_layer - 1].register_forward_hook(
            lambda mod, args, out: captured.__setitem__("before", out[0].detach().clone()))
        after = llama.layers[update_layer].register_forward_pre_hook(
            lambda mod, args: captured.__setitem__("after", args[0].detach().clone()))
        all_image_embeds = image_embeds.reshape(B, n_img, Nv, Dv)
        llama(inputs_embeds=inputs_embeds, attention_mask=torch.ones(B, L, dtype=torch.long), update_layer=update_layer,
              image_position_list=image_position_list, input_part_targets_len=input_part_targets_len,
              all_image_embeds=all_image_embeds, use_cache=False, return_dict=True)
        before.remove()
        after.remove()
        changed = (captured["after"] - captured["before"]).abs().amax(dim=-1) > 0  # [B, L]
        spans = torch.zeros(B, L, dtype=torch.bool)
        for start, end in image_position_list:
            spans[:, start:end] = True
        assert torch.equal(changed, spans), "the hook should change exactly the image spans"

    tensors = {}
    tensors.update({"Qformer." + k: v for k, v in Qformer.state_dict().items()})
    tensors.update({"ln_vision." + k: v for k, v in ln_vision.state_dict().items()})
    tensors.update({"llama_proj." + k: v for k, v in llama_proj.state_dict().items()})
    tensors["query_tokens"] = query_tokens.detach()
    tensors["llama_model.model.query_tokens"] = new_query_tokens.detach()
    tensors.update({"llama_model.model.qformer_proj." + k: v for k, v in qformer_proj.state_dict().items()})
    tensors.update({"llama_model.model.llm_proj." + k: v for k, v in llm_proj.state_dict().items()})
    tensors.update({
        "inputs.image_features": features.reshape(B * n_img, Nv, Dv),  # image k = sample k // n_img
        "inputs.hidden": captured["before"],  # [B, L, H] entering decoder layer update_layer
        "inputs.last_prompt_index": input_part_targets_len.to(torch.int64),
        "expected.qformer_output": qformer_out,
        "expected.vpg_output": vpg_out,
        "expected.hidden": captured["after"],
    })
    config = {"qformer": qformer_config, "num_query_token": Nq, "llm_hidden_size": H, "ln_vision_eps": 1e-5,
              "update_layer": update_layer, "batch_size": B, "images_per_sample": n_img,
              "image_position_list": image_position_list, "llama": llama_config}
    write_safetensors(fixture_path("vpgc", "cheetah-vpgc"), tensors, {
        "config": json.dumps(config),
        "source": "DCDmllm/Cheetah cheetah/models/Qformer.py BertLMHeadModel; cheetah/models/modeling_llama.py LlamaModel.forward (VPG-C hook)",
    })


if __name__ == "__main__":
    main()
