"""Parrot as a whole model: a tiny random checkpoint in the authors' layout, and the logits the authors' code computes.

    /usr/bin/python3 scripts/reference-fixtures/parrot_model.py <Parrot clone> <Bunny clone>

Runs, from the clones (nothing of them is copied here or committed):
  - AIDC-AI/Parrot `parrot/model/language_model/parrot_qwen2.py` (`ParrotQwen2ForCausalLM`, its `forward`),
    `parrot/model/parrot_arch.py` (`ParrotMetaModel`, `prepare_inputs_labels_for_multimodal`: the MoE call and the
    image splicing), `parrot/model/moe_model/moe.py` (`MultilingualMoE`), `multimodal_encoder/clip_encoder.py`
    (`CLIPVisionTower`: `hidden_states[mm_vision_select_layer]`, `cls_patch`) and `multimodal_projector/builder.py`
    (`mlp2x_gelu`), and `parrot/utils/mm_utils.py` (`expand2square`, the pad-to-square of `process_images`);
  - BAAI-DCAI/Bunny's vendored HF 4.37 `bunny/model/language_model/qwen2/` (`Qwen2Config`, `Qwen2Model`,
    `Qwen2ForCausalLM`, eager attention), which `parrot_qwen2.py` imports from `transformers`.

Stand-ins for `transformers` (only what those files touch): configs as attribute bags, `PreTrainedModel` as an
`nn.Module` with `config` / `dtype` / `device`, output bags, `ACT2FN` (SiLU), `AutoConfig` / `AutoModelForCausalLM`
registries that do nothing, `_prepare_4d_causal_attention_mask` with HF 4.37 semantics (causal + padding keys at the
float32 minimum, built in float32 as in `wings.py`), and `CLIPVisionModel`: HF's `modeling_clip.py` is vendored
nowhere reachable, so it is `clip_reference` from `vision_towers.py` (the float64 re-statement of HF
`CLIPVisionModel`) behind HF's names (`vision_model.*`, `post_layernorm`
included: the released checkpoints carry it although layer -2 never reaches it).

Tiny seeded config (Qwen2: vocab 266, hidden 32, 4 heads, 2 KV heads, 2 layers; CLIP: 12 px, patch 4, hidden 24,
3 layers; MoE: 3 experts, width 24, moe_weight 0.1), weights rounded to F32 (or BF16) and run in float64.

Written under `packages/pretrained/src/__fixtures__/reference/parrot/`:
  - `Parrot-tiny/`: `config.json` with the keys the authors' training writes (`mm_*`, `moe_*`, `image_aspect_ratio`,
    `tokenizer_padding_side`, ... and `mm_vision_tower` a path from the authors' machine), two F32 shards with
    `model.safetensors.index.json`, the state dict as `ParrotQwen2ForCausalLM.state_dict()` names it (LLM,
    `model.vision_tower.vision_tower.*`, `model.mm_projector.{0,2}.*`, `model.moe_model.*`), the tokenizer files of
    `packages/models/test-fixtures/tokenizers/qwen2-bpe` (Qwen2's byte-level BPE with 7 merges and the ChatML
    tokens), and `expected.safetensors` (see `expected_tensors`);
  - `Parrot-tiny-bf16/`: the same model with every weight rounded to BF16, three BF16 shards + index, and its own
    `expected.safetensors` (the reference run on the rounded weights);
  - `clip-vit-tiny-patch4-12/`: the tower directory `mm_vision_tower` names (its last path component), as a sibling:
    the CLIP `config.json` (the architecture exists only here) and `preprocessor_config.json`; no weights (the
    checkpoint carries the tower's).
"""
import importlib
import json
import os
import shutil
import sys
import types

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import (ROOT, Empty, ModelOutput, PretrainedConfig, PreTrainedModel, Registry,  # noqa: E402
                    float32_causal_mask, seed, stub_module, stub_siglip_processor_imports, stub_transformers_utils,
                    write_json, write_safetensors, write_safetensors_shards)
# the float64 CLIPVisionModel and the CLIP tower configs (importing runs no fixture)
from vision_towers import clip_config_json, clip_reference, clip_vision_config, clip_weight_shapes  # noqa: E402

USAGE = "usage: parrot_model.py <path to a clone of AIDC-AI/Parrot> <path to a clone of BAAI-DCAI/Bunny>"
if len(sys.argv) != 3:
    raise SystemExit(USAGE)
PARROT_ROOT = os.path.abspath(sys.argv[1])
BUNNY_QWEN2 = os.path.join(os.path.abspath(sys.argv[2]), "bunny", "model", "language_model", "qwen2")
if not os.path.isfile(os.path.join(PARROT_ROOT, "parrot", "model", "parrot_arch.py")) or not os.path.isfile(
        os.path.join(BUNNY_QWEN2, "modeling_qwen2.py")):
    raise SystemExit(USAGE)
OUT = os.path.join(ROOT, "packages", "pretrained", "src", "__fixtures__", "reference", "parrot")
TOKENIZER_DIR = os.path.join(ROOT, "packages", "models", "test-fixtures", "tokenizers", "qwen2-bpe")
TOWER_NAME = "clip-vit-tiny-patch4-12"
IMAGE_TOKEN_INDEX = -200


# ---- stand-ins for the `transformers` imports (configs, `PreTrainedModel`, output bags, the 4-D mask: `common.py`'s) ----
def prepare_4d_causal_attention_mask(attention_mask, input_shape, inputs_embeds, past_key_values_length, sliding_window=None):
    """HF 4.37 `_prepare_4d_causal_attention_mask`: `[B, 1, q, past + q]` (`common.float32_causal_mask`)."""
    B, q = input_shape
    k = past_key_values_length + q
    assert sliding_window is None or k <= sliding_window, "the fixture's sequences stay inside the sliding window"
    return float32_causal_mask(B, q, k, attention_mask)


def set_parameter(root: nn.Module, dotted: str, value: torch.Tensor) -> None:
    *path, leaf = dotted.split(".")
    module = root
    for part in path:
        if not hasattr(module, part):
            module.add_module(part, nn.Module())
        module = getattr(module, part)
    module.register_parameter(leaf, nn.Parameter(value))


class CLIPVisionModel(PreTrainedModel):
    """HF `CLIPVisionModel` for the authors' `CLIPVisionTower`: HF's parameter names, `clip_reference`'s math."""
    built = None

    def __init__(self, vision_config: dict):
        super().__init__(types.SimpleNamespace(**vision_config))
        self.vc = vision_config
        # registered in HF's order (the attention's k, v, q, out), which `randomize` draws in
        for name, shape in clip_weight_shapes(vision_config, ("k_proj", "v_proj", "q_proj", "out_proj")).items():
            set_parameter(self, name, torch.zeros(shape))

    @classmethod
    def from_pretrained(cls, name, device_map=None):
        assert os.path.basename(name) == TOWER_NAME, name
        return cls.built

    def forward(self, pixel_values, output_hidden_states=False):
        states, pooled = clip_reference(dict(self.named_parameters()), self.vc, pixel_values.permute(0, 2, 3, 1))
        return ModelOutput(last_hidden_state=states[-1], pooler_output=pooled, hidden_states=tuple(states))


class CLIPImageProcessor:
    @classmethod
    def from_pretrained(cls, name):
        with open(os.path.join(OUT, TOWER_NAME, "preprocessor_config.json")) as f:
            return types.SimpleNamespace(**json.load(f))


def _install_stubs() -> None:
    stub_module("transformers.activations", ACT2FN={"silu": nn.SiLU(), "gelu_pytorch_tanh": nn.GELU(approximate="tanh")})
    stub_module("transformers.cache_utils", Cache=Empty, DynamicCache=Empty)
    stub_module("transformers.modeling_attn_mask_utils", _prepare_4d_causal_attention_mask=prepare_4d_causal_attention_mask,
                _prepare_4d_causal_attention_mask_for_sdpa=None)
    stub_module("transformers.modeling_outputs", BaseModelOutputWithPast=ModelOutput, CausalLMOutputWithPast=ModelOutput,
                SequenceClassifierOutputWithPast=ModelOutput, BaseModelOutput=ModelOutput, BaseModelOutputWithPooling=ModelOutput)
    stub_module("transformers.modeling_utils", PreTrainedModel=PreTrainedModel)
    stub_module("transformers.configuration_utils", PretrainedConfig=PretrainedConfig)
    stub_transformers_utils()
    stub_siglip_processor_imports()  # siglip_encoder.py (imported by the tower builder, never run here)
    # Bunny's vendored HF Qwen2 as a package (its files import each other relatively)
    stub_module("bunny_qwen2").__path__ = [BUNNY_QWEN2]
    qwen2 = importlib.import_module("bunny_qwen2.modeling_qwen2")
    stub_module("transformers", PretrainedConfig=PretrainedConfig, Qwen2Config=qwen2.Qwen2Config, Qwen2Model=qwen2.Qwen2Model,
                Qwen2ForCausalLM=qwen2.Qwen2ForCausalLM, AutoConfig=Registry, AutoModelForCausalLM=Registry,
                AutoTokenizer=None, CLIPVisionModel=CLIPVisionModel, CLIPImageProcessor=CLIPImageProcessor,
                CLIPVisionConfig=None, StoppingCriteria=object)


_install_stubs()
sys.path.insert(0, PARROT_ROOT)
parrot_qwen2 = importlib.import_module("parrot.model.language_model.parrot_qwen2")
mm_utils = importlib.import_module("parrot.utils.mm_utils")
from PIL import Image  # noqa: E402  (Debian python3-pil, what the authors' expand2square works on)

# ---- tiny shapes ----
V, H, HEADS, KV_HEADS, LAYERS, INTER = 266, 32, 4, 2, 2, 48
S, P, C, DV, V_HEADS, V_INTER, V_LAYERS = 12, 4, 3, 24, 4, 40, 3
EXPERTS, MOE_INTER = 3, 24
PAD, IM_START, IM_END = 263, 264, 265
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

TOWER_CONFIG = clip_config_json(clip_vision_config(DV, V_INTER, V_LAYERS, V_HEADS, S, P))
PREPROCESSOR_CONFIG = {
    "crop_size": {"height": S, "width": S}, "do_center_crop": True, "do_convert_rgb": True, "do_normalize": True,
    "do_rescale": True, "do_resize": True, "image_mean": CLIP_MEAN, "image_processor_type": "CLIPImageProcessor",
    "image_std": CLIP_STD, "resample": 3, "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": S},
}


def parrot_config_json(torch_dtype: str) -> dict:
    """config.json as `ParrotQwen2Config.save_pretrained` writes it after the authors' training (`train.py` and
    `initialize_vision_modules` / `initialize_moe_modules` set the `mm_*`, `moe_*` and tokenizer keys)."""
    return {
        "architectures": ["ParrotQwen2ForCausalLM"], "model_type": "parrot_qwen2", "transformers_version": "4.39.0",
        "torch_dtype": torch_dtype, "vocab_size": V, "hidden_size": H, "intermediate_size": INTER,
        "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS, "hidden_act": "silu",
        "max_position_embeddings": 256, "initializer_range": 0.02, "rms_norm_eps": 1e-6, "use_cache": True,
        "tie_word_embeddings": False, "rope_theta": 1000000.0, "use_sliding_window": False, "sliding_window": 256,
        "max_window_layers": LAYERS, "attention_dropout": 0.0, "bos_token_id": PAD, "eos_token_id": IM_END,
        "mm_vision_tower": "/playgound/models/" + TOWER_NAME, "mm_hidden_size": DV, "mm_projector_type": "mlp2x_gelu",
        "mm_vision_select_layer": -2, "mm_vision_select_feature": "cls_patch", "mm_patch_merge_type": "flat",
        "mm_projector_lr": None, "use_mm_proj": True, "tune_mm_mlp_adapter": False, "freeze_mm_mlp_adapter": False,
        "image_aspect_ratio": "pad", "tokenizer_padding_side": "right", "tokenizer_model_max_length": 2048,
        "num_experts": EXPERTS, "moe_hidden_size": H, "moe_intermediate_size": MOE_INTER, "moe_top_k": EXPERTS,
        "moe_weight": 0.1, "use_moe": True, "use_moe_residual": True,
    }


def build_model(config_json: dict, weights: dict = None):
    """`ParrotQwen2ForCausalLM(config)` as `from_pretrained` builds it (tower from the tower directory, then the
    checkpoint's weights over everything), eager attention, eval mode."""
    keys = {k: v for k, v in config_json.items() if k not in ("architectures", "model_type", "transformers_version")}
    config = parrot_qwen2.ParrotQwen2Config(**keys)
    config._attn_implementation = "eager"
    config.pad_token_id = None
    CLIPVisionModel.built = CLIPVisionModel(TOWER_CONFIG["vision_config"])
    model = parrot_qwen2.ParrotQwen2ForCausalLM(config)
    if weights is not None:
        missing, unexpected = model.load_state_dict(weights, strict=False)
        assert not unexpected and all("rotary_emb" in m for m in missing), (missing, unexpected)
    return model.eval()


def randomize(model: nn.Module) -> None:
    """Random weights rounded to float32 (what an F32 checkpoint stores); norm weights around 1."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            is_norm = ("norm" in name or "layrnorm" in name) and name.endswith("weight")
            p.copy_((1 + 0.2 * torch.randn_like(p) if is_norm else 0.15 * torch.randn_like(p)).float().double())


def checkpoint_state(model: nn.Module) -> dict:
    """The state dict as the released checkpoints hold it (non-persistent rotary buffers are not saved)."""
    return {k: v.clone() for k, v in model.state_dict().items() if "rotary_emb" not in k}


def bf16_round(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.bfloat16).double()


def write_checkpoint(name: str, config_json: dict, state: dict, shards: int, bf16: bool) -> None:
    """config.json, `shards` safetensors files (`model-0000i-of-0000n.safetensors`) + `model.safetensors.index.json`
    (as `save_pretrained` shards), and the tokenizer files."""
    directory = os.path.join(OUT, name)
    write_json(os.path.join(directory, "config.json"), config_json)
    cast = torch.bfloat16 if bf16 else torch.float32  # the values are representable: the cast is exact
    write_safetensors_shards(directory, {n: t.to(cast) for n, t in state.items()}, shards)
    for file in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(TOKENIZER_DIR, file), os.path.join(directory, file))


def write_tower_dir() -> None:
    directory = os.path.join(OUT, TOWER_NAME)
    for file, content in (("config.json", TOWER_CONFIG), ("preprocessor_config.json", PREPROCESSOR_CONFIG)):
        write_json(os.path.join(directory, file), content)


# ---- the tokenizer, for the prompts (Qwen2's byte-level BPE of the qwen2-bpe fixture, ASCII text only) ----
class QwenBPE:
    """`tokenizer(text, add_special_tokens=False).input_ids` for ASCII text: added tokens split out first, Qwen2's
    pre-tokenizer regex (ASCII letters for `\\p{L}`, digits for `\\p{N}`), byte-level BPE with the file's merges."""

    def __init__(self, directory: str):
        import re
        with open(os.path.join(directory, "tokenizer.json")) as f:
            spec = json.load(f)
        self.vocab = spec["model"]["vocab"]
        self.ranks = {tuple(m.split(" ")): i for i, m in enumerate(spec["model"]["merges"])}
        self.added = {t["content"]: t["id"] for t in spec["added_tokens"]}
        pattern = spec["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"]
        self.split = re.compile(self.ascii_classes(pattern))
        self.added_re = re.compile("(" + "|".join(re.escape(t) for t in self.added) + ")")
        bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
        cs, n = bs[:], 0
        for b in range(256):
            if b not in bs:
                bs.append(b)
                cs.append(256 + n)
                n += 1
        self.byte_char = {b: chr(c) for b, c in zip(bs, cs)}

    @staticmethod
    def ascii_classes(pattern: str) -> str:
        """`\\p{L}` / `\\p{N}` (which Python's `re` lacks) as ASCII ranges, bracketed outside a character class."""
        out, depth, i = "", 0, 0
        while i < len(pattern):
            if pattern[i] == "\\" and pattern[i + 1:i + 4] in ("p{L", "p{N"):
                ranges = "A-Za-z" if pattern[i + 3] == "L" else "0-9"
                out += ranges if depth else "[" + ranges + "]"
                i += 5
                continue
            if pattern[i] == "\\":
                out += pattern[i:i + 2]
                i += 2
                continue
            depth += pattern[i] == "["
            depth -= pattern[i] == "]" and depth > 0
            out += pattern[i]
            i += 1
        return out

    def bpe(self, word: str):
        parts = list(word)
        while len(parts) > 1:
            pairs = [(self.ranks.get((a, b), 1 << 30), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
            rank, i = min(pairs)
            if rank == 1 << 30:
                break
            parts = parts[:i] + [parts[i] + parts[i + 1]] + parts[i + 2:]
        return [self.vocab[p] for p in parts]

    def __call__(self, text: str):
        assert text.isascii()
        ids = []
        for chunk in self.added_re.split(text):
            if chunk in self.added:
                ids.append(self.added[chunk])
                continue
            for piece in self.split.findall(chunk):
                ids.extend(self.bpe("".join(self.byte_char[b] for b in piece.encode("utf-8"))))
        return ids


def format_query(tokenize, query: str):
    """The authors' `QwenConversationFormatter.format_query(query)` ids (the formatter needs a HF tokenizer type, so
    its loop is driven here with the same turns): default system turn, the user turn, an empty assistant preface;
    each turn tokenized alone, `<image>` → IMAGE_TOKEN_INDEX between separately tokenized chunks."""
    turns = [("<|im_start|>system\n", "You are a helpful assistant."), ("<|im_start|>user\n", query), ("<|im_start|>assistant\n", "")]
    ids = []
    for i, (role, message) in enumerate(turns):
        text = role + message + ("<|im_end|>\n" if i < len(turns) - 1 else "")
        chunks = text.split("<image>")
        for k, chunk in enumerate(chunks):
            ids.extend(tokenize(chunk))
            if k < len(chunks) - 1:
                ids.append(IMAGE_TOKEN_INDEX)
    return ids


def pixel_values_like_clip_processor(image) -> torch.Tensor:
    """`CLIPImageProcessor.preprocess` for an image already at the processor's size (resize and centre crop are
    the identity then): `(u8 · rescale_factor − mean) / std` in float32 as HF computes it, NCHW."""
    x = (np.asarray(image, dtype=np.uint8).astype(np.float64) * PREPROCESSOR_CONFIG["rescale_factor"]).astype(np.float32)
    x = (x - np.array(CLIP_MEAN, dtype=np.float32)) / np.array(CLIP_STD, dtype=np.float32)
    return torch.from_numpy(x.astype(np.float32)).permute(2, 0, 1).double()


def batch_inputs(tokenize):
    """Two prompts with one image each, of unequal lengths, right-padded (`pad` = `<|endoftext|>`) with the mask."""
    prompts = [format_query(tokenize, "<image>\nDescribe the scene."),
               format_query(tokenize, "<image>\nColour?")]
    L = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), L), PAD, dtype=torch.long)
    mask = torch.zeros(len(prompts), L, dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, :len(p)] = torch.tensor(p)
        mask[i, :len(p)] = 1
    return ids, mask


def greedy(model, input_ids, images, steps: int, eos: int):
    """HF `generate` (greedy, KV cache) reproduced without a cache: the prefill's `inputs_embeds` come from the
    authors' `prepare_inputs_labels_for_multimodal` once (the MoE runs on the prompt only, as it does at prefill),
    then each step appends the chosen token's embedding and runs the whole sequence again (causal attention makes
    the last row equal to a cached decode step). Checks that each argmax wins by a margin the ports can resolve."""
    with torch.no_grad():
        _, _, _, _, embeds, _ = model.prepare_inputs_labels_for_multimodal(input_ids, None, torch.ones_like(input_ids), None, None, images)
        tokens = []
        for _ in range(steps):
            logits = model(inputs_embeds=embeds, use_cache=False, return_dict=True).logits[0, -1]
            top = torch.topk(logits, 2)
            assert top.values[0] - top.values[1] > 1e-3, f"greedy step too close to call: {top}"
            token = int(top.indices[0])
            if token == eos:
                break
            tokens.append(token)
            embeds = torch.cat([embeds, model.get_model().embed_tokens(torch.tensor([[token]]))], 1)
    return tokens


def expected_tensors(config_json: dict, state: dict, tokenize) -> dict:
    """Inputs and the authors' outputs (`ParrotQwen2ForCausalLM.forward(input_ids, attention_mask, images)` logits):
    - `inputs.input_ids` / `inputs.attention_mask` `[2, L]` (−200 where the image goes, right-padded), `inputs.pixel_values`
      `[2, 3, 12, 12]`; `expected.logits` `[2, L', V]` over the spliced sequence, `expected.attention_mask` `[2, L']`
      (the mask `prepare_inputs_labels_for_multimodal` builds: right padding, positions 0.. per sample),
      `expected.image_features` (the tower's layer −2 with CLS) and `expected.moe_output` (the MoE's output per image);
    - `expected.logits_no_moe_weight_last` `[2, V]`: each sample's last row of the same run with `moe_weight` absent from
      the config (α = the module's 1.0 fallback);
    - `inputs.multi_input_ids` `[1, L]` with two images (`inputs.multi_pixel_values`), `expected.multi_logits`: the
      authors' loop runs the MoE once per sample and splices zeros for a sample's second image;
    - chat: `inputs.chat_image_u8` (8 wide × 12 high, RGB) → `expand2square` with the mean colour → `inputs.chat_pixel_values`
      (the CLIP processor's output), `inputs.chat_input_ids` (`format_query('<image>\\n' + question)`) and
      `expected.chat_tokens`, greedy as `generate` (up to 6 tokens, eos `<|im_end|>`); the question is metadata."""
    model = build_model(config_json, state)
    ids, mask = batch_inputs(tokenize)
    px = torch.randn(2, C, S, S).float().double()
    captured = {}
    model.get_model().vision_tower.register_forward_hook(lambda m, i, o: captured.__setitem__("features", o))
    model.get_model().moe_model.register_forward_hook(lambda m, i, o: captured.setdefault("moe", []).append(o))
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, images=px, use_cache=False, return_dict=True)
        _, _, spliced_mask, _, _, _ = model.prepare_inputs_labels_for_multimodal(ids, None, mask, None, None, px)
    tensors = {"inputs.input_ids": ids.int(), "inputs.attention_mask": mask.int(), "inputs.pixel_values": px,
               "expected.logits": out.logits, "expected.attention_mask": spliced_mask.int(),
               "expected.image_features": captured["features"], "expected.moe_output": torch.stack(captured["moe"][:2])}
    no_alpha = {k: v for k, v in config_json.items() if k != "moe_weight"}
    with torch.no_grad():
        no_alpha_logits = build_model(no_alpha, state)(input_ids=ids, attention_mask=mask, images=px, use_cache=False, return_dict=True).logits
        last = spliced_mask.long().sum(1) - 1
        tensors["expected.logits_no_moe_weight_last"] = no_alpha_logits[torch.arange(2), last]  # [2, V]: each sample's last row
        multi = torch.tensor([format_query(tokenize, "<image>\n<image>\nSame?")])
        multi_px = torch.randn(2, C, S, S).float().double()
        tensors["inputs.multi_input_ids"] = multi.int()
        tensors["inputs.multi_pixel_values"] = multi_px
        tensors["expected.multi_logits"] = model(input_ids=multi, images=multi_px, use_cache=False, return_dict=True).logits
    question = "What is in the picture?"
    u8 = torch.randint(0, 256, (S, 8, C), dtype=torch.uint8)
    square = mm_utils.expand2square(Image.fromarray(u8.numpy(), "RGB"), tuple(int(x * 255) for x in CLIP_MEAN))
    assert square.size == (S, S)
    chat_px = pixel_values_like_clip_processor(square)[None]
    chat_ids = torch.tensor([format_query(tokenize, "<image>\n" + question)])
    tensors["inputs.chat_image_u8"] = u8.numpy()
    tensors["inputs.chat_pixel_values"] = chat_px
    tensors["inputs.chat_input_ids"] = chat_ids.int()
    tensors["expected.chat_tokens"] = torch.tensor(greedy(model, chat_ids, chat_px, 6, IM_END), dtype=torch.int32)
    tensors["__question"] = question
    return tensors


def write_expected(name: str, tensors: dict, source: str, keep=None) -> None:
    """Float outputs stored as F32 (6e-8 relative, far inside the tests' 1e-5) to keep the fixture small; `keep` limits
    which entries are written."""
    question = tensors.pop("__question")
    if keep is not None:
        tensors = {k: v for k, v in tensors.items() if k in keep}
    tensors = {k: v.float() if isinstance(v, torch.Tensor) and v.dtype == torch.float64 else v for k, v in tensors.items()}
    write_safetensors(os.path.join(OUT, name, "expected.safetensors"), tensors, {"source": source, "chat_question": question})


def main() -> None:
    seed(31)
    tokenize = QwenBPE(TOKENIZER_DIR)
    assert tokenize("You are a helpful assistant.")[:12] == list(b"You are a") + [32, 256, 108]  # 'he' merged, as the TS tokenizer test says
    write_tower_dir()
    f32_config = parrot_config_json("float32")
    model = build_model(f32_config)
    randomize(model)
    state = checkpoint_state(model)
    assert any(k.startswith("model.vision_tower.vision_tower.vision_model.post_layernorm") for k in state)
    assert {k for k in state if k.startswith("model.mm_projector.")} == {f"model.mm_projector.{i}.{p}" for i in (0, 2) for p in ("weight", "bias")}
    source = "parrot/model/language_model/parrot_qwen2.py ParrotQwen2ForCausalLM (+ parrot_arch.py, moe.py) over Bunny's HF 4.37 Qwen2"
    write_checkpoint("Parrot-tiny", f32_config, state, shards=2, bf16=False)
    seed(32)  # the same inputs for both checkpoints, so the tests can also compare the two runs
    write_expected("Parrot-tiny", expected_tensors(f32_config, state, tokenize), source)
    seed(32)
    bf16_state = {k: bf16_round(v) for k, v in state.items()}
    bf16_config = parrot_config_json("bfloat16")
    write_checkpoint("Parrot-tiny-bf16", bf16_config, bf16_state, shards=3, bf16=True)
    # the BF16 checkpoint's own run: the batch and the chat (the other cases do not depend on the weights' storage)
    keep = {"inputs.input_ids", "inputs.attention_mask", "inputs.pixel_values", "expected.logits", "expected.attention_mask",
            "inputs.chat_image_u8", "inputs.chat_pixel_values", "inputs.chat_input_ids", "expected.chat_tokens"}
    write_expected("Parrot-tiny-bf16", expected_tensors(bf16_config, bf16_state, tokenize), source + ", weights rounded to BF16", keep)


main()
