"""Vision-tower parity fixtures: HF CLIP vision model, SigLIP as Parrot / Wings vendor it, EVA ViT as Cheetah builds it.

    /usr/bin/python3 scripts/reference-fixtures/vision_towers.py <Parrot clone> <Cheetah clone>

- CLIP: HF's `modeling_clip.py` is not vendored by any of the reference repositories, so the reference here
  is `clip_reference` below, a float64 torch re-statement (written in this script, nothing copied) of the
  published `CLIPVisionModel` architecture: bias-free conv patch embedding, CLS token, learned positions,
  `pre_layrnorm`, pre-norm encoder layers (q/k/v/out projections, `quick_gelu` MLP), `post_layernorm` on the CLS
  row only (the pooled output), and every hidden state (embeddings after `pre_layrnorm`, then one per layer),
  from which LLaVA's `CLIPVisionTower.feature_select` picks `mm_vision_select_layer` / `mm_vision_select_feature`.
- SigLIP: imports `parrot/model/multimodal_encoder/siglip_encoder.py` from the Parrot clone (Wings vendors the
  same file as `wings/model/multimodal_encoder/siglip.py`) with stand-ins for its `transformers` / PIL imports,
  and runs `SigLipVisionModel` (hidden states, `post_layernorm`, the pooling head's output), then
  `SigLipVisionTower`: its `load_model` drops the last encoder layer and replaces the pooling head by
  `nn.Identity`; the features are `hidden_states[-1]` of the truncated model (the tower's `forward`
  minus its `assert ... == 729`, which only holds at 384 px / patch 14). The checkpoint is the full model's
  (all layers, `post_layernorm`, the pooling head), as `from_pretrained` would read it.
- EVA: imports `cheetah/models/eva_vit.py` from the Cheetah clone (stand-ins for `timm`'s helpers and the
  download helper) and builds its `VisionTransformer` with `create_eva_vit_g`'s arguments at a tiny size
  (`qkv_bias`, LayerNorm eps 1e-6, mlp_ratio 4.3637, no rel-pos bias, no layer scale, no mean pooling);
  `ln_vision` (BLIP-2's LayerNorm, eps 1e-5) is applied after it as `Blip2Base.init_vision_encoder` does
  (as a plain float64 `nn.LayerNorm`: BLIP-2's subclass only casts fp16 input to float32 and back).

Weights are stored F32 and the references run in float64 on those values. Pixel inputs are written channels
last (`[N, S, S, C]`, already normalised), what the TypeScript towers take; the references get them as NCHW.
Written under `packages/models/src/vision/__fixtures__/<name>/`: `config.json`, `model.safetensors`,
`expected.safetensors`.
"""
import importlib
import os
import sys
import types
from functools import partial

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (ROOT, ModelOutput, PretrainedConfig, PreTrainedModel, seed, stub_module,  # noqa: E402
                    stub_siglip_processor_imports, write_json, write_safetensors)

USAGE = "usage: vision_towers.py <path to a clone of AIDC-AI/Parrot> <path to a clone of DCDmllm/Cheetah>"
OUT = os.path.join(ROOT, "packages", "models", "src", "vision", "__fixtures__")
siglip = eva = None  # the authors' modules, set by `load`


# ---- stand-ins for the imports of the authors' files (only what they touch at import or in the calls made;
# the configs, `PreTrainedModel` and the output bags are `common.py`'s) ----
def _install_stubs() -> None:
    stub_module("PIL", Image=types.SimpleNamespace(Image=object))
    stub_module("transformers", PretrainedConfig=PretrainedConfig)
    stub_siglip_processor_imports()
    stub_module("transformers.activations", ACT2FN={"gelu_pytorch_tanh": nn.GELU(approximate="tanh")})
    stub_module("transformers.modeling_outputs", BaseModelOutput=ModelOutput, BaseModelOutputWithPooling=ModelOutput)
    stub_module("transformers.modeling_utils", PreTrainedModel=PreTrainedModel)
    stub_module("transformers.utils", ModelOutput=object)
    # eva_vit.py: timm helpers (drop_path is only reached with drop_path_rate > 0) and the download helper
    stub_module("timm.models.layers", drop_path=None, to_2tuple=lambda x: x if isinstance(x, tuple) else (x, x),
                trunc_normal_=lambda t, std=1.0: nn.init.trunc_normal_(t, std=std))
    stub_module("timm.models.registry", register_model=lambda f: f)
    stub_module("cheetah.common.dist_utils", download_cached_file=None)


def load(parrot_root: str, cheetah_root=None) -> None:
    """Installs the stand-ins and imports Parrot's `siglip_encoder.py` (and Cheetah's `eva_vit.py` when its clone is
    given); `llava.py` calls it to reuse the SigLIP tower and `clip_reference`."""
    global siglip, eva
    parrot_encoder = os.path.join(os.path.abspath(parrot_root), "parrot", "model", "multimodal_encoder")
    cheetah_models = os.path.join(os.path.abspath(cheetah_root), "Cheetah", "cheetah", "models") if cheetah_root else None
    if not os.path.isfile(os.path.join(parrot_encoder, "siglip_encoder.py")) or (cheetah_models and not os.path.isfile(os.path.join(cheetah_models, "eva_vit.py"))):
        raise SystemExit(USAGE)
    _install_stubs()
    sys.path.insert(0, parrot_encoder)
    siglip = importlib.import_module("siglip_encoder")
    if cheetah_models:
        sys.path.insert(0, cheetah_models)
        eva = importlib.import_module("eva_vit")

# ---- tiny shapes: 12 px images, 4 px patches (3 × 3 = 9 patches), hidden 32, 4 heads ----
B, S, P, C, D, HEADS, INTER, LAYERS = 2, 12, 4, 3, 32, 4, 48, 3
S_SIGLIP = 14


def randomize(module: nn.Module) -> None:
    """Random weights rounded to float32 (what the F32 checkpoint stores); LayerNorm weights around 1."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            is_norm = any(k in name for k in ("norm", "layrnorm", "ln_vision")) and name.endswith("weight")
            value = 1 + 0.2 * torch.randn_like(p) if is_norm else 0.2 * torch.randn_like(p)
            p.copy_(value.float().double())


def pixels(size: int = S) -> torch.Tensor:
    """`[B, size, size, C]` normalised pixel values (F32-representable)."""
    return torch.randn(B, size, size, C).float().double()


def write(name: str, config_json: dict, weights: dict, expected: dict, source: str) -> None:
    directory = os.path.join(OUT, name)
    write_json(os.path.join(directory, "config.json"), config_json)
    write_safetensors(os.path.join(directory, "model.safetensors"), {k: v.float() for k, v in weights.items()}, {"format": "pt"})
    write_safetensors(os.path.join(directory, "expected.safetensors"), expected, {"source": source})


# ---- CLIP: float64 re-statement of HF CLIPVisionModel (see the file comment) ----
def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


def clip_reference(w: dict, cfg: dict, px_nhwc: torch.Tensor):
    """All hidden states of `CLIPVisionModel` and its pooled output, from state dict `w` (float64)."""
    pre = "vision_model."
    h, heads, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["layer_norm_eps"]
    act = quick_gelu if cfg["hidden_act"] == "quick_gelu" else partial(nn.functional.gelu)
    x = px_nhwc.permute(0, 3, 1, 2)  # NCHW
    patches = nn.functional.conv2d(x, w[pre + "embeddings.patch_embedding.weight"], stride=cfg["patch_size"])  # [N, D, g, g]
    patches = patches.flatten(2).transpose(1, 2)  # [N, P, D]
    cls = w[pre + "embeddings.class_embedding"].expand(x.shape[0], 1, -1)
    e = torch.cat([cls, patches], 1) + w[pre + "embeddings.position_embedding.weight"][None]
    ln = lambda t, k: nn.functional.layer_norm(t, (h,), w[k + ".weight"], w[k + ".bias"], eps)  # noqa: E731
    lin = lambda t, k: nn.functional.linear(t, w[k + ".weight"], w[k + ".bias"])  # noqa: E731
    hidden = ln(e, pre + "pre_layrnorm")
    states = [hidden]
    for i in range(cfg["num_hidden_layers"]):
        k = f"{pre}encoder.layers.{i}."
        n, L = hidden.shape[:2]
        y = ln(hidden, k + "layer_norm1")
        split = lambda t: t.view(n, L, heads, h // heads).transpose(1, 2)  # noqa: E731
        q = split(lin(y, k + "self_attn.q_proj")) * (h // heads) ** -0.5
        kk, v = split(lin(y, k + "self_attn.k_proj")), split(lin(y, k + "self_attn.v_proj"))
        a = torch.softmax(q @ kk.transpose(-1, -2), -1) @ v
        hidden = hidden + lin(a.transpose(1, 2).reshape(n, L, h), k + "self_attn.out_proj")
        y = ln(hidden, k + "layer_norm2")
        hidden = hidden + lin(act(lin(y, k + "mlp.fc1")), k + "mlp.fc2")
        states.append(hidden)
    pooled = ln(hidden[:, 0], pre + "post_layernorm")
    return states, pooled


def clip_vision_config(hidden_size: int, intermediate_size: int, num_hidden_layers: int, num_attention_heads: int,
                       image_size: int, patch_size: int) -> dict:
    """A CLIP `vision_config` (RGB, quick_gelu, LayerNorm eps 1e-5, as the released ViT-L/14 towers)."""
    return {"hidden_size": hidden_size, "intermediate_size": intermediate_size, "num_hidden_layers": num_hidden_layers,
            "num_attention_heads": num_attention_heads, "image_size": image_size, "patch_size": patch_size, "num_channels": 3,
            "layer_norm_eps": 1e-5, "hidden_act": "quick_gelu", "projection_dim": 16, "model_type": "clip_vision_model"}


def clip_config_json(vc: dict) -> dict:
    """A tower directory's config.json as OpenAI's CLIP checkpoints have it: a full `CLIPConfig`, `vision_config` nested."""
    return {"model_type": "clip", "architectures": ["CLIPModel"], "projection_dim": 16, "torch_dtype": "float32",
            "text_config": {"hidden_size": 16, "model_type": "clip_text_model"}, "vision_config": vc}


def siglip_config_json(vision: dict, torch_dtype: str = "float32") -> dict:
    """A SigLIP tower directory's config.json: a bare vision config (`model_type` `siglip_vision_model`)."""
    return {"model_type": "siglip_vision_model", "architectures": ["SiglipVisionModel"], "torch_dtype": torch_dtype, **vision}


def vision_config_kwargs(config_json: dict) -> dict:
    """The `SigLipVisionConfig(...)` arguments of a tower config.json (what `siglip_config_json` added removed)."""
    return {k: v for k, v in config_json.items() if k not in ("model_type", "architectures", "torch_dtype")}


def clip_weight_shapes(vc: dict, projections=("q_proj", "k_proj", "v_proj", "out_proj")) -> dict:
    """Name → shape of HF `CLIPVisionModel`'s `vision_model.*` parameters for a CLIP vision config, the attention
    projections of each layer in the order `projections` gives (the order parameters are drawn or registered in)."""
    pre = "vision_model."
    D, C, P, S, INTER = vc["hidden_size"], vc["num_channels"], vc["patch_size"], vc["image_size"], vc["intermediate_size"]
    shapes = {pre + "embeddings.patch_embedding.weight": (D, C, P, P), pre + "embeddings.class_embedding": (D,),
              pre + "embeddings.position_embedding.weight": ((S // P) ** 2 + 1, D)}
    for norm in ("pre_layrnorm", "post_layernorm"):
        shapes[f"{pre}{norm}.weight"] = shapes[f"{pre}{norm}.bias"] = (D,)
    for i in range(vc["num_hidden_layers"]):
        k = f"{pre}encoder.layers.{i}."
        for proj in projections:
            shapes[k + f"self_attn.{proj}.weight"], shapes[k + f"self_attn.{proj}.bias"] = (D, D), (D,)
        for norm in ("layer_norm1", "layer_norm2"):
            shapes[k + norm + ".weight"] = shapes[k + norm + ".bias"] = (D,)
        shapes[k + "mlp.fc1.weight"], shapes[k + "mlp.fc1.bias"] = (INTER, D), (INTER,)
        shapes[k + "mlp.fc2.weight"], shapes[k + "mlp.fc2.bias"] = (D, INTER), (D,)
    return shapes


def clip_random_weights(vc: dict) -> dict:
    """Seeded random `vision_model.*` weights of a CLIP vision config (float32-representable float64; LayerNorm
    weights around 1), drawn in `clip_weight_shapes`' order."""
    w = {}
    for name, shape in clip_weight_shapes(vc).items():
        is_norm = ("norm" in name or "layrnorm" in name) and name.endswith("weight")
        w[name] = ((1 + 0.2 * torch.randn(shape)) if is_norm else 0.2 * torch.randn(shape)).float().double()
    return w


def clip_fixture() -> None:
    """A full `CLIPConfig`-style config.json (`vision_config` nested), quick_gelu; the LLaVA selections of
    Parrot (layer −2, `cls_patch`) and LLaVA's default (layer −2, `patch`) and the last layer."""
    seed(21)
    vc = clip_vision_config(D, INTER, LAYERS, HEADS, S, P)
    cj = clip_config_json(vc)
    w = clip_random_weights(vc)
    px = pixels()
    states, pooled = clip_reference(w, vc, px)
    expected = {"inputs.pixel_values": px, "expected.pooler_output": pooled, "expected.last_hidden_state": states[-1],
                "expected.hidden_state_0": states[0],
                "expected.select_m2_cls_patch": states[-2], "expected.select_m2_patch": states[-2][:, 1:]}
    write("clip", cj, w, expected, "float64 re-statement of HF CLIPVisionModel in vision_towers.py (clip_reference)")


# ---- SigLIP: the authors' SigLipVisionTower (Parrot's siglip_encoder.py) ----
def siglip_fixture() -> None:
    """A bare vision config.json (`model_type` `siglip_vision_model`), gelu_pytorch_tanh, no CLS; 14 px images with
    4 px patches: the "valid" conv leaves the last 2 rows and columns unused (as so400m's 384 px with patch 14)."""
    seed(22)
    cj = siglip_config_json({"hidden_size": D, "intermediate_size": INTER, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
                             "image_size": S_SIGLIP, "patch_size": P, "num_channels": C, "layer_norm_eps": 1e-6,
                             "hidden_act": "gelu_pytorch_tanh"})
    config = siglip.SigLipVisionConfig(**vision_config_kwargs(cj))
    full = siglip.SigLipVisionModel(config)
    randomize(full)
    full.eval()
    weights = {k: v.clone() for k, v in full.state_dict().items() if not k.endswith("position_ids")}
    px = pixels(S_SIGLIP)
    with torch.no_grad():
        out = full(px.permute(0, 3, 1, 2), output_hidden_states=True, return_dict=True)
        last, states, pooled = out.last_hidden_state, out.hidden_states, out.pooler_output
        # the authors' tower around the same weights: from_pretrained returns this model, load_model truncates it
        siglip.SigLipVisionModel.from_pretrained = classmethod(lambda cls, name: full)
        tower = siglip.SigLipVisionTower("tiny-siglip", vision_tower_cfg=None)
        tower_features = tower.vision_tower(px.permute(0, 3, 1, 2), output_hidden_states=True).hidden_states[-1]
    assert len(tower.vision_tower.vision_model.encoder.layers) == LAYERS - 1
    expected = {"inputs.pixel_values": px, "expected.last_hidden_state": last, "expected.hidden_state_0": states[0],
                "expected.pooler_output": pooled, "expected.tower_features": tower_features}
    write("siglip", cj, weights, expected, "parrot/model/multimodal_encoder/siglip_encoder.py SigLipVisionModel + SigLipVisionTower")


# ---- EVA ViT: Cheetah's eva_vit.py VisionTransformer + ln_vision ----
def eva_fixture() -> None:
    seed(23)
    mlp_ratio = 4.3637
    vit = eva.VisionTransformer(img_size=S, patch_size=P, use_mean_pooling=False, embed_dim=D, depth=LAYERS,
                                num_heads=HEADS, mlp_ratio=mlp_ratio, qkv_bias=True, drop_path_rate=0.0,
                                norm_layer=partial(nn.LayerNorm, eps=1e-6), use_checkpoint=False)
    ln_vision = nn.LayerNorm(D)

    class Wrapper(nn.Module):  # the names of the Cheetah / BLIP-2 checkpoint
        def __init__(self):
            super().__init__()
            self.visual_encoder, self.ln_vision = vit, ln_vision

    model = Wrapper()
    randomize(model)
    model.eval()
    cj = {"model_type": "eva_vit", "img_size": S, "patch_size": P, "embed_dim": D, "depth": LAYERS, "num_heads": HEADS,
          "mlp_ratio": mlp_ratio, "qkv_bias": True, "layer_norm_eps": 1e-6, "ln_vision_eps": 1e-5}
    px = pixels()
    with torch.no_grad():
        features = vit(px.permute(0, 3, 1, 2))
        embeds = ln_vision(features)
        layers = vit.get_intermediate_layers(px.permute(0, 3, 1, 2))
    assert vit.blocks[0].mlp.fc1.out_features == int(D * mlp_ratio)
    expected = {"inputs.pixel_values": px, "expected.visual_encoder": features, "expected.image_embeds": embeds,
                "expected.layer_0": layers[0]}
    write("eva", cj, dict(model.state_dict()), expected, "Cheetah/cheetah/models/eva_vit.py VisionTransformer + ln_vision")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(USAGE)
    load(sys.argv[1], sys.argv[2])
    clip_fixture()
    siglip_fixture()
    eva_fixture()
