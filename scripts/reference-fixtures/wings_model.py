"""A whole Wings model, run by the authors' own code, written as a checkpoint directory in their layout.

    /usr/bin/python3 scripts/reference-fixtures/wings_model.py <Wings clone> <Bunny clone>

Builds tiny random `WingsQwen2ForCausalLM` and `WingsLlamaForCausalLM` models the way Wings' `infer.py` does (`WingsMetaForCausalLM.build` →
`initialize_vision_modules` → `initialize_modules`), from the clones (nothing of them is copied here or
committed):
  - Wings `wings/model/modeling_wings_qwen2.py` and `modeling_wings_llama.py` (the models, their layer and
    model forwards; the LLaMA one on Bunny's 4.38 LLaMA with stand-ins, see `build_llama`),
    `base_architecture.py` (`LlavaMetaModel`, `prepare_multimodal_inputs`: LLaVA's splicing as Wings
    changed it), `base_module.py` (the learners, the router), `multimodal_encoder/siglip.py`
    (`SigLipVisionTower`: drops the tower's last layer and head), `multimodal_projector/base.py`;
  - Bunny's `bunny/model/language_model/{qwen2,llama}/` (the HF Qwen2 / LLaMA files Wings imports as `transformers`).

What it writes, under `packages/pretrained/src/__fixtures__/wings/`:
  - `wings-qwen2/`: the checkpoint as the authors' trainer saves it: `config.json` (every key the authors'
    code put on the config: `mm_hidden_size` reads 1152 because `initialize_vision_modules` copies the
    hidden size of `SigLipVisionTower`'s default config, whatever the tower; nothing records which layers
    carry learners or which router), two shards `model-0000{1,2}-of-00002.safetensors` (the authors'
    loader globs `model-000*.safetensors`; no index is written, it would be ignored), the tiny Qwen2
    tokenizer of the models package's test fixtures (vocab 266) with its `tokenizer_config.json`;
  - `siglip-so400m-patch14-384/`: the tower directory the config's `mm_vision_tower` names (a path from
    the "authors' machine"; the loader falls back to a sibling directory of that name): the full tiny
    SigLIP (every layer and the pooling head, as `SigLipVisionModel.from_pretrained` reads it);
  - `wings-qwen2/expected.safetensors`: inputs and the authors' logits (not read by the loader);
  - `wings-llama/`: the same for `WingsLlamaForCausalLM` (2 of 4 KV heads, llama3 scaling; no tokenizer).

Sizes: decoder hidden 32, 4 heads (= KV heads, as Qwen1.5), 2 layers, learners on both (`attn_layers_idx`:
the authors' layer forward reads `attn_pool` on every layer once an image is present), `lora_dim` 4, the router `ReweightLinear(4096)` exactly as `initialize_modules`
hard-codes it (weight `[2, 4096]`, sliced to the sequence length); SigLIP hidden 24, 3 layers (2 used),
14 px images with 4 px patches: 3 × 3 = 9 patches, the tiny counterpart of so400m's 27 × 27 = 729
(`image_token_length` 9, `system_prompt_length` 4). The tower's `assert ... == 729` is checked with 9:
the module source is loaded with that one literal replaced (in memory; the clone is not modified).

Precision: weights random, rounded to float32 (stored F32), run in float64. The authors' code casts the
pixels to bfloat16 before the tower (`prepare_multimodal_inputs`), the tower casts its output back to the
pixels' dtype, and `initialize_modules` casts each new learner (its rotary cos/sin tables included) to
bfloat16; in this run `torch.bfloat16` resolves to float64 inside those three files (a stand-in module for
their `torch` global), so the fixture records the float64 function the release computes in bf16 (with the
learners' tables in bf16, logits move by ~2e-4 relative at this size).

Expected: a batch of 2 prompts with one image each, unequal lengths (right-padded: `tokenizer_padding_side`
right), images at different offsets; a text-only batch of 2 (no images: only the textual learner, no
router); 4 greedy tokens for sample 0 of the image batch (the authors' generate re-runs the whole sequence
each step: `prepare_inputs_for_generation` asserts there is no KV cache).
"""
import importlib
import importlib.util
import logging
import os
import shutil
import sys
import types

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import (ROOT, AttentionMaskConverter, Empty, ModelOutput, PreTrainedModel, Registry, seed, stub_module,  # noqa: E402
                    stub_siglip_processor_imports, stub_transformers_utils, write_json, write_safetensors)
from hf_decoders import llama3_inv_freq  # noqa: E402  (definitions only; its fixtures run under its __main__)
from vision_towers import siglip_config_json  # noqa: E402  (likewise)

USAGE = "usage: wings_model.py <path to a clone of AIDC-AI/Wings> <path to a clone of BAAI-DCAI/Bunny>"
if len(sys.argv) != 3 or not all(os.path.isdir(p) for p in sys.argv[1:]):
    raise SystemExit(USAGE)
WINGS = os.path.abspath(sys.argv[1])
BUNNY_QWEN2 = os.path.join(os.path.abspath(sys.argv[2]), "bunny", "model", "language_model", "qwen2")
BUNNY_LLAMA = os.path.join(os.path.abspath(sys.argv[2]), "bunny", "model", "language_model", "llama")
if not os.path.isfile(os.path.join(WINGS, "wings", "model", "modeling_wings_qwen2.py")) or not os.path.isfile(os.path.join(BUNNY_QWEN2, "modeling_qwen2.py")):
    raise SystemExit(USAGE)
OUT = os.path.join(ROOT, "packages", "pretrained", "src", "__fixtures__", "wings")
TOKENIZER = os.path.join(ROOT, "packages", "models", "test-fixtures", "tokenizers", "qwen2-bpe")

# ---- tiny sizes ----
VOCAB, H, HEADS, INTER, LAYERS, THETA, MAX_POS = 266, 32, 4, 48, 2, 1000000.0, 64
# Learners on every layer, as released: the authors' model forward is installed on every decoder layer and
# reads `attn_pool` whenever an image is present, so a layer without learners cannot run an image prompt.
LEARNER_LAYERS, LORA, SP = list(range(LAYERS)), 4, 4
TOWER = {"hidden_size": 24, "intermediate_size": 40, "num_hidden_layers": 3, "num_attention_heads": 2, "image_size": 14,
         "patch_size": 4, "num_channels": 3, "layer_norm_eps": 1e-6, "hidden_act": "gelu_pytorch_tanh"}
PATCHES = (TOWER["image_size"] // TOWER["patch_size"]) ** 2  # 9: the tiny 729
TOWER_NAME = "siglip-so400m-patch14-384"  # build_vision_tower dispatches on 'siglip-so400m' in the path
AUTHORS_TOWER_PATH = "/mnt/workspace/models/" + TOWER_NAME
PAD_ID, IMAGE = 263, -200  # <|endoftext|> (Wings' pad token), IMAGE_TOKEN_INDEX


# ---- stand-ins for the `transformers` / PIL / tqdm pieces the imported files touch (the shared ones: `common.py`) ----
class PretrainedConfig(common.PretrainedConfig):
    use_cache = False
    pad_token_id = None


class _Float64Torch(types.ModuleType):
    """`torch` as the two files casting to bfloat16 see it in this run (see the module docstring)."""

    def __getattr__(self, name):
        return torch.float64 if name == "bfloat16" else getattr(torch, name)


def _install_stubs() -> None:
    stub_module("tqdm", tqdm=lambda x, *a, **k: x)
    stub_module("PIL", Image=types.SimpleNamespace(Image=object))
    stub_module("transformers.activations", ACT2FN={"silu": nn.SiLU(), "gelu_pytorch_tanh": nn.GELU(approximate="tanh")})
    stub_module("transformers.cache_utils", Cache=Empty, DynamicCache=Empty, StaticCache=Empty)
    stub_module("transformers.pytorch_utils", ALL_LAYERNORM_LAYERS=[])
    stub_module("transformers.utils.import_utils", is_torchdynamo_compiling=lambda: False)
    stub_module("transformers.modeling_attn_mask_utils", AttentionMaskConverter=AttentionMaskConverter,
                _prepare_4d_causal_attention_mask=None, _prepare_4d_causal_attention_mask_for_sdpa=None)
    stub_module("transformers.modeling_outputs", BaseModelOutput=ModelOutput, BaseModelOutputWithPooling=ModelOutput,
                BaseModelOutputWithPast=Empty, CausalLMOutputWithPast=Empty, SequenceClassifierOutputWithPast=Empty,
                QuestionAnsweringModelOutput=Empty)
    stub_module("transformers.modeling_utils", PreTrainedModel=PreTrainedModel)
    stub_module("transformers.configuration_utils", PretrainedConfig=PretrainedConfig)
    stub_siglip_processor_imports()
    stub_transformers_utils(ModelOutput)
    stub_module("bunny_qwen2").__path__ = [BUNNY_QWEN2]
    stub_module("bunny_llama").__path__ = [BUNNY_LLAMA]
    qwen2 = importlib.import_module("bunny_qwen2.modeling_qwen2")
    llama = importlib.import_module("bunny_llama.modeling_llama")
    stub_module("transformers", Qwen2Config=qwen2.Qwen2Config, Qwen2Model=qwen2.Qwen2Model,
                Qwen2ForCausalLM=qwen2.Qwen2ForCausalLM, LlamaConfig=llama.LlamaConfig, LlamaModel=llama.LlamaModel,
                LlamaForCausalLM=llama.LlamaForCausalLM, AutoConfig=Registry, AutoModelForCausalLM=Registry,
                PretrainedConfig=PretrainedConfig, CLIPVisionModel=Empty, CLIPImageProcessor=Empty,
                CLIPVisionConfig=Empty, Trainer=Empty)
    # The Wings package without its __init__ files (they import every model class).
    stub_module("wings").__path__ = [os.path.join(WINGS, "wings")]
    stub_module("wings.model").__path__ = [os.path.join(WINGS, "wings", "model")]
    # SigLipVisionTower's patch-count assertion at the tiny size: the module loaded from its source with
    # the literal 729 (27 × 27 patches of so400m) replaced by this tower's 3 × 3.
    path = os.path.join(WINGS, "wings", "model", "multimodal_encoder", "siglip.py")
    source = open(path).read()
    assert source.count("== 729") == 2, "the tower's patch-count assertions moved; update wings_model.py"
    name = "wings.model.multimodal_encoder.siglip"
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader=None, origin=path))
    module.__file__ = path
    sys.modules[name] = module
    exec(compile(source.replace("== 729", f"== {PATCHES}"), path, "exec"), module.__dict__)


_install_stubs()
qwen2 = importlib.import_module("bunny_qwen2.modeling_qwen2")
siglip = sys.modules["wings.model.multimodal_encoder.siglip"]
base_architecture = importlib.import_module("wings.model.base_architecture")
wings_qwen2 = importlib.import_module("wings.model.modeling_wings_qwen2")
wings_llama = importlib.import_module("wings.model.modeling_wings_llama")
# HF's logging gives every Logger `warning_once`; modeling_wings_llama.py calls it on wings.utils' logger.
logging.Logger.warning_once = lambda self, *args, **kwargs: None
for _module in (base_architecture, siglip, wings_qwen2, wings_llama):
    _module.torch = _Float64Torch("torch")


def rounded_random(module: nn.Module, scale: float = 0.3, skip: str = "\0") -> None:
    """Every parameter (except those under `skip`) random and float32-representable (the authors' init
    zeroes the learners' up-projections, which would test nothing); norm weights around 1."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.startswith(skip):
                continue
            is_norm = ("norm" in name or "layernorm" in name) and name.endswith("weight")
            value = 1 + 0.2 * torch.randn_like(p) if is_norm else scale * torch.randn_like(p)
            p.copy_(value.float().double())


def tower_model():
    """The full tiny SigLIP (the tower directory's model); `SigLipVisionModel.from_pretrained` returns it."""
    seed(5)
    config = siglip.SigLipVisionConfig(**TOWER)
    full = siglip.SigLipVisionModel(config)
    rounded_random(full)
    full.eval()
    return full


def config_json(config, architecture="WingsQwen2ForCausalLM", model_type="wings_qwen2", **extra) -> dict:
    """The config as the authors' `save_pretrained` writes it: every public attribute their code set."""
    out = {k: v for k, v in vars(config).items() if not k.startswith("_")}
    out.update(architectures=[architecture], model_type=model_type, torch_dtype="float32", transformers_version="4.37.2", **extra)
    return out


def build_qwen2(full_tower):
    seed(7)
    config = wings_qwen2.WingsQwen2Config(
        vocab_size=VOCAB, hidden_size=H, intermediate_size=INTER, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
        num_key_value_heads=HEADS, hidden_act="silu", max_position_embeddings=MAX_POS, initializer_range=0.02,
        rms_norm_eps=1e-6, use_cache=False, tie_word_embeddings=False, rope_theta=THETA, use_sliding_window=False,
        sliding_window=None, max_window_layers=LAYERS, attention_dropout=0.0, bos_token_id=None, eos_token_id=265)
    return initialize(wings_qwen2.WingsQwen2ForCausalLM, config, full_tower)


def initialize(model_class, config, full_tower):
    """The model `model_class(config)` with eager attention and the released run's tower (the checkpoint's config names
    it: `LlavaMetaModel.__init__` builds tower and projector; the projector is built from the tower's real width,
    so400m's 1152 in the release; `SigLipVisionModel.from_pretrained` returns `full_tower`), then `infer.py`'s steps
    after `build`: the vision modules, the learners (`initialize_modules`), the tokenizer's padding side on the
    config; then every weight random except the tower's."""
    config._attn_implementation = "eager"
    config.mm_vision_tower = AUTHORS_TOWER_PATH
    config.mm_hidden_size = TOWER["hidden_size"]
    config.mm_projector_type = "mlp2x_gelu"
    siglip.SigLipVisionModel.from_pretrained = classmethod(lambda cls, name: full_tower)
    model = model_class(config)
    model_args = types.SimpleNamespace(
        vision_tower=AUTHORS_TOWER_PATH, mm_vision_select_layer=-2, mm_vision_select_feature="patch",
        pretrain_mm_mlp_adapter=None, mm_patch_merge_type="flat", mm_projector_type="mlp2x_gelu", lora_dim=LORA,
        model_max_length=2048, system_prompt_length=SP, attn_layers_idx=LEARNER_LAYERS, wings_router_type="linear")
    data_args = types.SimpleNamespace(image_aspect_ratio="pad", image_token_length=PATCHES)
    training_args = types.SimpleNamespace(use_cache=False, tune_only_mm_mlp_adapter=False, mm_projector_lr=1e-5,
                                          vision_tower_lr_follow_mm_projector=True, lr_projector_follow_tuned_keys=["mm_projector"])
    model.get_model().initialize_vision_modules(model_args=model_args, fsdp=[])
    model.initialize_modules(model_args=model_args, data_args=data_args, training_args=training_args)
    # infer.py: the tokenizer's padding side and length go on the config.
    model.config.tokenizer_padding_side = "right"
    model.config.tokenizer_max_length = 2048
    assert model.config.mm_hidden_size == 1152
    model.double()
    # The tower keeps the tower directory's weights (frozen in the release: the checkpoint's copy is the same).
    rounded_random(model, skip="model.vision_tower.")
    model.eval()
    return model


# ---- Wings-LLaMA-3.1 (`modeling_wings_llama.py`) ----
LLAMA3_SCALING = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 16.0,
                  "original_max_position_embeddings": 128}


def update_causal_mask(attention_mask, input_tensor, cache_position, past_key_values, output_attentions):
    """Stands in for HF ≥ 4.43 `LlamaModel._update_causal_mask` (eager, no cache): causal and padding keys at
    the float32 minimum, as the Qwen2 path's `to_4d` stand-in."""
    L = input_tensor.shape[1]
    return AttentionMaskConverter(True).to_4d(attention_mask, L, L, torch.float32)


def build_llama(full_tower):
    """`WingsLlamaForCausalLM` on Bunny's 4.38 `LlamaModel`: modeling_wings_llama.py is written against HF ≥ 4.43,
    whose model has a model-level `rotary_emb` (its `position_embeddings` are ignored by 4.38's attention, which
    rotates with its own per-layer `rotary_emb`) and a 5-argument `_update_causal_mask`; those two are stood in
    on the model. The 4.38 config rejects `llama3` scaling: each main-attention layer's `inv_freq` is overwritten
    with `hf_decoders.py`'s float64 llama3 frequencies (the learners keep `rope_theta` unscaled, as the
    authors' `WingsAttention` builds them). 8-of-32 grouped KV heads at tiny scale: 2 of 4."""
    seed(8)
    config = wings_llama.WingsLlamaConfig(
        vocab_size=VOCAB, hidden_size=H, intermediate_size=INTER, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
        num_key_value_heads=2, hidden_act="silu", max_position_embeddings=MAX_POS, initializer_range=0.02, rms_norm_eps=1e-5,
        use_cache=False, tie_word_embeddings=False, rope_theta=10000.0, rope_scaling=None, attention_bias=False,
        attention_dropout=0.0, pretraining_tp=1, bos_token_id=None, eos_token_id=265)
    model = initialize(wings_llama.WingsLlamaForCausalLM, config, full_tower)
    inv_freq = torch.from_numpy(llama3_inv_freq(10000.0, H // HEADS, 8.0, 1.0, 16.0, 128)).float()
    for layer in model.model.layers:
        layer.self_attn.rotary_emb.inv_freq.copy_(inv_freq)
    model.model._update_causal_mask = update_causal_mask
    model.model.rotary_emb = lambda hidden_states, position_ids: None
    return model


def write_checkpoint(directory: str, model, config: dict, tokenizer: bool = True) -> None:
    os.makedirs(directory, exist_ok=True)
    state = {k: v.detach().float() for k, v in model.state_dict().items()}
    names = sorted(state)
    half = len(names) // 2
    for i, part in enumerate((names[:half], names[half:])):
        write_safetensors(os.path.join(directory, f"model-0000{i + 1}-of-00002.safetensors"), {k: state[k] for k in part}, {"format": "pt"})
    write_json(os.path.join(directory, "config.json"), config)
    for name in ("tokenizer.json", "tokenizer_config.json") if tokenizer else ():
        shutil.copyfile(os.path.join(TOKENIZER, name), os.path.join(directory, name))


def write_tower(full_tower) -> None:
    directory = os.path.join(OUT, TOWER_NAME)
    os.makedirs(directory, exist_ok=True)
    weights = {k: v.detach().float() for k, v in full_tower.state_dict().items()}
    write_safetensors(os.path.join(directory, "model.safetensors"), weights, {"format": "pt"})
    write_json(os.path.join(directory, "config.json"), siglip_config_json(TOWER))


def pad_right(rows):
    L = max(len(r) for r in rows)
    ids = torch.tensor([r + [PAD_ID] * (L - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (L - len(r)) for r in rows])
    return ids, mask


def logits_of(model, rows, images):
    ids, mask = pad_right(rows)
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, images=images, return_dict=False)
    # WingsQwen2ForCausalLM returns (0, logits, ...), WingsLlamaForCausalLM (logits, ...)
    return ids, mask, out[0] if isinstance(model, wings_llama.WingsLlamaForCausalLM) else out[1]


def greedy(model, row, image, steps):
    tokens = list(row)
    out = []
    for _ in range(steps):
        _, _, logits = logits_of(model, [tokens], image)
        top2 = logits[0, -1].topk(2)
        assert top2.values[0] - top2.values[1] > 1e-3, "greedy step too close to a tie for a parity fixture"
        out.append(int(top2.indices[0]))
        tokens.append(out[-1])
    return out


def qwen2_fixture() -> None:
    full_tower = tower_model()
    write_tower(full_tower)
    model = build_qwen2(full_tower)
    directory = os.path.join(OUT, "wings-qwen2")
    write_checkpoint(directory, model, config_json(model.config))
    write_expected(directory, model, "wings/model/modeling_wings_qwen2.py WingsQwen2ForCausalLM.forward (+ base_architecture.py, "
                                     "multimodal_encoder/siglip.py SigLipVisionTower; Bunny's HF Qwen2)")


def llama_fixture() -> None:
    """No tokenizer in this directory (the loader's tokenizer is optional)."""
    model = build_llama(tower_model())
    directory = os.path.join(OUT, "wings-llama")
    config = config_json(model.config, "WingsLlamaForCausalLM", "wings_llama")
    config["rope_scaling"] = LLAMA3_SCALING  # as the released LLaMA-3.1 config has it (the model ran it via inv_freq)
    write_checkpoint(directory, model, config, tokenizer=False)
    write_expected(directory, model, "wings/model/modeling_wings_llama.py WingsLlamaForCausalLM.forward (+ base_architecture.py, "
                                     "multimodal_encoder/siglip.py; Bunny's HF 4.38 LLaMA with llama3 inv_freq, stand-ins for the "
                                     "4.43 model-level rotary and _update_causal_mask)")


def write_expected(directory: str, model, source: str) -> None:
    g = torch.Generator().manual_seed(11)
    # Sample 0: system span then the image at position SP (as the released template puts `<image>\n` first);
    # sample 1: two user tokens before the image, shorter tail. Pixels: the processor's output range.
    sample0 = [264, 115, 10, 89, IMAGE, 10, 87, 104, 97, 116, 63, 265, 10, 264, 97]
    sample1 = [264, 115, 10, 89, 67, 68, IMAGE, 10, 72, 105, 265, 10]
    pixels = (torch.rand(2, 3, TOWER["image_size"], TOWER["image_size"], generator=g) * 2 - 1).float().double()
    ids, mask, logits = logits_of(model, [sample0, sample1], pixels)
    text0 = [264, 115, 10, 89, 97, 98, 99, 265, 10, 264]
    text1 = [264, 115, 10, 100, 101, 102, 265]
    text_ids, text_mask, text_logits = logits_of(model, [text0, text1], None)
    tokens = greedy(model, sample0, pixels[:1], 4)
    i32 = lambda t: t.to(torch.int32)  # noqa: E731
    write_safetensors(os.path.join(directory, "expected.safetensors"), {
        "inputs.input_ids": i32(ids), "inputs.attention_mask": i32(mask), "inputs.pixel_values": pixels,
        "expected.logits": logits,
        "inputs.text_input_ids": i32(text_ids), "inputs.text_attention_mask": i32(text_mask), "expected.text_logits": text_logits,
        "expected.greedy_tokens": torch.tensor(tokens, dtype=torch.int32),
    }, {"source": source, "greedy_from": "inputs.input_ids[0] with pixel_values[0]"})


# ---- the prompt: infer.py's replace_image_token + the authors' ConversationFormatter.format_query ----
def infer_functions() -> dict:
    """`replace_image_token` and its helpers, compiled from `infer.py` alone (the file's imports, which load
    the whole package and PIL, are not run)."""
    import ast
    path = os.path.join(WINGS, "infer.py")
    tree = ast.parse(open(path).read(), path)
    wanted = {"retain_only_first_sub_str", "remove_image_token", "replace_image_token"}
    tree.body = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in wanted]
    namespace: dict = {}
    exec(compile(tree, path, "exec"), namespace)
    return namespace


class CharTokenizer:
    """Stands in for the HF tokenizer inside `ConversationFormatter`: only its prompt string is recorded
    (one id per character, so the formatter's own consistency assertion holds)."""

    def __call__(self, text, add_special_tokens=False):
        return types.SimpleNamespace(input_ids=[ord(c) for c in text])


def prompt_fixture() -> None:
    replace = infer_functions()["replace_image_token"]
    formatter_module = importlib.import_module("wings.model.conversation_formatter")
    slots = {  # run/finetune_wings_qwen1_5.sh (the ModelArguments defaults) and run/finetune_wings_llama3_1.sh
        "wings_qwen2": ("<|im_start|>system\n", "<|im_start|>user\n", "<|im_start|>assistant\n", "<|im_end|>"),
        "wings_llama": ("<|start_header_id|>user<|end_header_id|>\n\n", "<|start_header_id|>system<|end_header_id|>\n\n",
                        "<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>"),
    }
    questions = ["What color is this image?", "<image 1>\nWhat color is this image?", "Compare <image 2> with <image 1>.",
                 "<image 1> and <image 1> again", "Look: <image 3> then <image 4>"]
    cases = []
    for question in questions:
        instruction = replace(instruction=question, source_default_tokens=[f"<image {i}>" for i in range(1, 5)],
                              target_tokens="<image>", leaved_token_num=1)
        prompts = {}
        for model_type, (system, user, gpt, eot) in slots.items():
            formatter = formatter_module.ConversationFormatter(CharTokenizer(), system, user, gpt, eot)
            prompts[model_type] = formatter.format_query(instruction)[0]
        cases.append({"question": question, "instruction": instruction, "prompts": prompts})
    path = os.path.join(OUT, "prompts.json")
    write_json(path, {"source": "infer.py replace_image_token + wings/model/conversation_formatter.py format_query", "cases": cases})
    print(f"wrote {os.path.relpath(path, ROOT)} ({len(cases)} cases)")


if __name__ == "__main__":
    qwen2_fixture()
    llama_fixture()
    prompt_fixture()
