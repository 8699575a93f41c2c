"""LLaVA whole-model parity fixtures: checkpoint directories in the authors' layout and the logits their code computes.

    /usr/bin/python3 scripts/reference-fixtures/llava.py <Bunny clone> <Parrot clone>

Runs, from the clones (nothing of them is copied here or committed):
  - Bunny's `bunny/model/bunny_arch.py` `BunnyMetaForCausalLM.prepare_inputs_labels_for_multimodal` (the original
    LLaVA splice: padding dropped by `attention_mask`, text split at each IMAGE_TOKEN_INDEX, image features put in
    place, the batch padded on `tokenizer_padding_side` with position_ids 0.. per sample) and `encode_images`;
  - Bunny's `bunny/model/multimodal_projector/builder.py` `build_vision_projector` (`mlp2x_gelu`, `linear`);
  - Parrot's `parrot/model/multimodal_encoder/clip_encoder.py` `CLIPVisionTower` (`feature_select` with
    `mm_vision_select_layer` / `mm_vision_select_feature`) around `clip_reference` of `vision_towers.py` (HF's
    `CLIPVisionModel` is vendored nowhere: its float64 re-statement there stands in for it);
  - Parrot's `siglip_encoder.py` `SigLipVisionTower` (last layer deleted, `hidden_states[-1]`; imported by
    `vision_towers.load`), called as its `forward` minus the `assert ... == 729` (384 px / patch 14 only);
  - HF's Qwen2 / LLaMA decoder layers as Bunny vendors them, through `hf_decoders.Reference` (the model loop).
Stand-ins: those of `hf_decoders.py` and `vision_towers.py`, plus `transformers.CLIPVisionModel` (a callable
returning `clip_reference`'s hidden states), `CLIPImageProcessor` (unused), and the `timm` / `torchvision` names
the projector builder imports for projectors not built here. The vision-tower builder is not imported (Bunny's
picks its own CLIP / SigLIP classes, which import HF's modeling files); the towers above are built directly.

Positions: `prepare_inputs_labels_for_multimodal` returns its position_ids (0..L_b−1 on each sample's real rows,
0 on padding) when the caller passes position_ids, and the decoder gets those (HF's generate makes the same
values on real rows from `cumsum(attention_mask) − 1`).

Two checkpoints under `packages/models/src/__fixtures__/reference/`:
  - `llava-qwen2-clip/` (`model_type` llava_qwen2, F32 `model.safetensors`, `mm_projector_type` mlp2x_gelu,
    CLIP layer −2 `patch`, right padding) without the tower's weights: they are in the sibling tower directory
    `tiny-clip-vit-12/` (`config.json` + `model.safetensors`), the last component of `mm_vision_tower`;
  - `llava-llama-siglip-bf16/` (`model_type` llava_llama, BF16, two shards + `model.safetensors.index.json`,
    `linear` projector, left padding) with the full SigLIP tower's weights in the checkpoint
    (`model.vision_tower.vision_tower.*`, last layer and head included as a full tower's checkpoint has them);
    the tower directory `tiny-siglip-14/` has only the `config.json`. The reference runs on the BF16 values.
Each `expected.safetensors`: `inputs.input_ids` `[2, 7]` (sample 0 with two images, sample 1 with one and 3
padding tokens: at the end for the first checkpoint, at the start for the second), `inputs.attention_mask`,
`inputs.pixel_values` `[3, 3, S, S]` (NCHW, F32 values), `expected.image_features` (the tower's selected
features), `expected.logits` `[2, L, V]`, the spliced `expected.attention_mask` / `expected.position_ids`, and a
single prompt (`inputs.single_input_ids`, `inputs.single_pixel_values`) with `expected.single_logits` and
`expected.greedy_tokens` (5 greedy tokens: argmax of the last row, appended, the whole prompt re-run).
"""
import importlib
import os
import sys
import types

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_decoders  # noqa: E402
import vision_towers  # noqa: E402
from common import ROOT, seed, stub_module, write_json, write_safetensors, write_safetensors_shards  # noqa: E402

USAGE = "usage: llava.py <path to a clone of BAAI-DCAI/Bunny> <path to a clone of AIDC-AI/Parrot>"
OUT = os.path.join(ROOT, "packages", "models", "src", "__fixtures__", "reference")
IMAGE = -200
V, H = hf_decoders.V, hf_decoders.H


class CLIPVisionModelStandIn:
    """What `transformers.CLIPVisionModel.from_pretrained(name)` returns here: `clip_reference` on given weights."""
    registry = {}

    def __init__(self, weights: dict, vision_config: dict):
        self.weights, self.vision_config = weights, vision_config
        self.dtype, self.device = torch.float64, torch.device("cpu")

    @classmethod
    def from_pretrained(cls, name, device_map=None):
        return cls.registry[name]

    def requires_grad_(self, flag):
        return self

    def __call__(self, images, output_hidden_states=False):
        states, pooled = vision_towers.clip_reference(self.weights, self.vision_config, images.permute(0, 2, 3, 1))
        return types.SimpleNamespace(hidden_states=states, last_hidden_state=states[-1], pooler_output=pooled)


def load(bunny_root: str, parrot_root: str):
    hf_decoders.load(bunny_root)
    vision_towers.load(parrot_root)
    stub_module("transformers", CLIPVisionModel=CLIPVisionModelStandIn,
                CLIPImageProcessor=types.SimpleNamespace(from_pretrained=lambda *a, **k: None), CLIPVisionConfig=None)
    clip_encoder = importlib.import_module("clip_encoder")  # Parrot's (its folder is on sys.path after vision_towers.load)
    bunny = os.path.join(os.path.abspath(bunny_root), "bunny")
    if not os.path.isfile(os.path.join(bunny, "model", "bunny_arch.py")):
        raise SystemExit(USAGE)
    stub_module("bunny").__path__ = [bunny]
    stub_module("bunny.model").__path__ = [os.path.join(bunny, "model")]
    stub_module("bunny.model.multimodal_encoder.builder", build_vision_tower=None)
    stub_module("bunny.model.multimodal_projector").__path__ = [os.path.join(bunny, "model", "multimodal_projector")]
    stub_module("timm.layers.norm_act", LayerNormAct2d=None)
    stub_module("torchvision.ops.misc", SqueezeExcitation=None)
    stub_module("torchvision.models.mobilenetv3", InvertedResidual=None, InvertedResidualConfig=None)
    projector_builder = importlib.import_module("bunny.model.multimodal_projector.builder")
    arch = importlib.import_module("bunny.model.bunny_arch")
    return clip_encoder, projector_builder, arch


def make_reference_class(arch):
    class LlavaReference(arch.BunnyMetaForCausalLM):
        """The authors' arch mixin on the vendored decoder: `get_model()` gives the embedding, tower and projector."""

        def __init__(self, config, decoder, tower, projector):
            self.config, self.decoder = config, decoder
            self.inner = types.SimpleNamespace(embed_tokens=decoder.embed_tokens, get_vision_tower=lambda: tower, mm_projector=projector)
            self.device = torch.device("cpu")

        def get_model(self):
            return self.inner

        def forward(self, input_ids, attention_mask, images):
            B, T = input_ids.shape
            _, position_ids, mask, _, embeds, _ = self.prepare_inputs_labels_for_multimodal(
                input_ids.clone(), torch.zeros(B, T, dtype=torch.long), attention_mask, None, None, images)
            return self.decoder(mask, inputs_embeds=embeds, position_ids=position_ids), mask, position_ids

        def greedy(self, input_ids, images, steps):
            ids = input_ids.clone()
            out = []
            for _ in range(steps):
                logits, _, _ = self.forward(ids, torch.ones_like(ids), images)
                token = int(logits[0, -1].argmax())
                out.append(token)
                ids = torch.cat([ids, torch.tensor([[token]])], 1)
            return out

    return LlavaReference


def prompt_ids(pattern):
    """Token ids from a pattern: 'i' = IMAGE_TOKEN_INDEX, 't' = a random text id in [1, V), 'p' = padding (0)."""
    return [IMAGE if c == "i" else 0 if c == "p" else int(torch.randint(1, V, (1,))) for c in pattern]


def inputs_for(patterns):
    ids = torch.tensor([prompt_ids(p) for p in patterns])
    mask = torch.tensor([[0 if c == "p" else 1 for c in p] for p in patterns])
    return ids, mask


def run_expected(reference, patterns, pixel_size: int, single_pattern: str, tower_features):
    i32 = lambda t: t.to(torch.int32)  # noqa: E731
    ids, mask = inputs_for(patterns)
    n_images = sum(p.count("i") for p in patterns)
    px = torch.randn(n_images, 3, pixel_size, pixel_size).float().double()
    single_ids, _ = inputs_for([single_pattern])
    single_px = torch.randn(1, 3, pixel_size, pixel_size).float().double()
    with torch.no_grad():
        features = tower_features(px)
        logits, spliced_mask, positions = reference.forward(ids, mask, px)
        single_logits, _, _ = reference.forward(single_ids, torch.ones_like(single_ids), single_px)
        greedy = reference.greedy(single_ids, single_px, 5)
    return {"inputs.input_ids": i32(ids), "inputs.attention_mask": i32(mask), "inputs.pixel_values": px,
            "expected.image_features": features, "expected.logits": logits,
            "expected.attention_mask": i32(spliced_mask), "expected.position_ids": i32(positions),
            "inputs.single_input_ids": i32(single_ids), "inputs.single_pixel_values": single_px,
            "expected.single_logits": single_logits, "expected.greedy_tokens": torch.tensor(greedy, dtype=torch.int32)}


def decoder_tensors(decoder) -> dict:
    return {(n if n.startswith("lm_head") else "model." + n): v for n, v in decoder.state_dict().items()
            if "rotary_emb" not in n and not n.endswith("_cached")}


def llava_qwen2_clip(clip_encoder, projector_builder, Reference) -> None:
    seed(31)
    vc = vision_towers.clip_vision_config(24, 40, 3, 4, 12, 4)
    tower_json = vision_towers.clip_config_json(vc)
    tower_weights = vision_towers.clip_random_weights(vc)
    tower_name = "openai/tiny-clip-vit-12"
    CLIPVisionModelStandIn.registry[tower_name] = CLIPVisionModelStandIn(tower_weights, vc)
    cj = hf_decoders.base_json("qwen2", max_position_embeddings=64, rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=False,
                               use_sliding_window=False, sliding_window=None, attention_dropout=0.0, bos_token_id=1, eos_token_id=2)
    cj.update(model_type="llava_qwen2", architectures=["LlavaQwen2ForCausalLM"], mm_vision_tower=tower_name, mm_hidden_size=24,
              mm_projector_type="mlp2x_gelu", mm_vision_select_layer=-2, mm_vision_select_feature="patch", mm_patch_merge_type="flat",
              image_aspect_ratio="pad", tokenizer_padding_side="right", tokenizer_model_max_length=64, use_mm_proj=True)
    config = types.SimpleNamespace(**cj)
    qc = hf_decoders.qwen2.Qwen2Config(**{k: v for k, v in hf_decoders.base_json("qwen2").items() if k not in ("model_type", "architectures", "torch_dtype")},
                                       max_position_embeddings=64, rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=False,
                                       use_sliding_window=False, sliding_window=None, attention_dropout=0.0)
    qc._attn_implementation = "eager"
    decoder = hf_decoders.Reference("qwen2", qc, tie=False)
    hf_decoders.randomize(decoder)
    decoder.eval()
    projector = projector_builder.build_vision_projector(config)
    hf_decoders.randomize(projector)
    tower = clip_encoder.CLIPVisionTower(tower_name, args=config)
    reference = Reference(config, decoder, tower, projector)
    name = "llava-qwen2-clip"
    directory = os.path.join(OUT, name)
    write_json(os.path.join(directory, "config.json"), cj)
    weights = decoder_tensors(decoder)
    weights.update({"model.mm_projector." + n: v for n, v in projector.state_dict().items()})
    write_safetensors(os.path.join(directory, "model.safetensors"), {n: v.float() for n, v in weights.items()}, {"format": "pt"})
    tower_dir = os.path.join(OUT, tower_name.split("/")[-1])
    write_json(os.path.join(tower_dir, "config.json"), tower_json)
    write_safetensors(os.path.join(tower_dir, "model.safetensors"), {n: v.float() for n, v in tower_weights.items()}, {"format": "pt"})
    expected = run_expected(reference, ["ttitit" + "t", "titt" + "ppp"], 12, "ttittt", tower)
    write_safetensors(os.path.join(directory, "expected.safetensors"), expected,
                      {"source": "bunny_arch.py prepare_inputs_labels_for_multimodal + Parrot CLIPVisionTower (clip_reference) + Bunny mlp2x_gelu + vendored HF Qwen2"})


def llava_llama_siglip_bf16(projector_builder, Reference) -> None:
    seed(32)
    siglip = vision_towers.siglip
    vj = vision_towers.siglip_config_json({"hidden_size": 24, "intermediate_size": 40, "num_hidden_layers": 3, "num_attention_heads": 4,
                                           "image_size": 14, "patch_size": 4, "num_channels": 3, "layer_norm_eps": 1e-6,
                                           "hidden_act": "gelu_pytorch_tanh"}, "bfloat16")
    full = siglip.SigLipVisionModel(siglip.SigLipVisionConfig(**vision_towers.vision_config_kwargs(vj)))
    vision_towers.randomize(full)
    full.eval()
    tower_name = "google/tiny-siglip-14"
    cj = hf_decoders.base_json("llama", max_position_embeddings=64, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                               attention_bias=False, bos_token_id=1, eos_token_id=2)
    decoder = hf_decoders.Reference("llama", hf_decoders.llama_config(cj, None), tie=False)
    hf_decoders.randomize(decoder)
    decoder.eval()
    cj.update(model_type="llava_llama", architectures=["LlavaLlamaForCausalLM"], torch_dtype="bfloat16", mm_vision_tower=tower_name,
              mm_hidden_size=24, mm_projector_type="linear", mm_vision_select_layer=-2, mm_vision_select_feature="patch",
              mm_patch_merge_type="flat", image_aspect_ratio="pad", tokenizer_padding_side="left", use_mm_proj=True)
    config = types.SimpleNamespace(**cj)
    projector = projector_builder.build_vision_projector(config)
    hf_decoders.randomize(projector)
    with torch.no_grad():  # the checkpoint is BF16: the reference runs on the BF16 values
        for module in (full, decoder, projector):
            for p in module.parameters():
                p.copy_(p.bfloat16().double())
    weights = decoder_tensors(decoder)
    weights.update({"model.mm_projector." + n: v for n, v in projector.state_dict().items()})
    weights.update({"model.vision_tower.vision_tower." + n: v for n, v in full.state_dict().items() if not n.endswith("position_ids")})
    # The authors' tower around the same model: from_pretrained returns it, load_model deletes its last layer and head.
    siglip.SigLipVisionModel.from_pretrained = classmethod(lambda cls, name: full)
    tower = siglip.SigLipVisionTower(tower_name, vision_tower_cfg=None)
    assert len(full.vision_model.encoder.layers) == vj["num_hidden_layers"] - 1

    def tower_forward(images):  # SigLipVisionTower.forward without its 729-patch assert
        return tower.vision_tower(images, output_hidden_states=True).hidden_states[-1]

    reference = Reference(config, decoder, tower_forward, projector)
    name = "llava-llama-siglip-bf16"
    directory = os.path.join(OUT, name)
    write_json(os.path.join(directory, "config.json"), cj)
    write_safetensors_shards(directory, {n: v.bfloat16() for n, v in weights.items()}, 2)
    write_json(os.path.join(OUT, tower_name.split("/")[-1], "config.json"), vj)
    expected = run_expected(reference, ["ttitit" + "t", "ppp" + "titt"], 14, "ttittt", tower_forward)
    write_safetensors(os.path.join(directory, "expected.safetensors"), expected,
                      {"source": "bunny_arch.py prepare_inputs_labels_for_multimodal + Parrot SigLipVisionTower + Bunny linear projector + vendored HF LLaMA, BF16 weights"})


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(USAGE)
    clip_encoder, projector_builder, arch = load(sys.argv[1], sys.argv[2])
    Reference = make_reference_class(arch)
    llava_qwen2_clip(clip_encoder, projector_builder, Reference)
    llava_llama_siglip_bf16(projector_builder, Reference)
