"""Whole-model Cheetah fixtures: a tiny random Cheetah, Vicuna and LLaMA-2 flavours, built with DCDmllm/Cheetah's own classes,
saved as the authors release it (four `torch.save` files + LAVIS YAML), and the logits of the authors' inference
code for prompts with images.

    /usr/bin/python3 scripts/reference-fixtures/cheetah_model.py /path/to/DCDmllm/Cheetah

Model: `eva_vit.py` `VisionTransformer` (tiny `create_eva_vit_g` arguments), `ln_vision`, `Qformer.py`
`BertLMHeadModel` with the BLIP-2 settings (`init_Qformer`) stripped of its text side as `Cheetah_Vicuna.__init__`
strips it, `query_tokens`, `llama_proj`, and `modeling_llama.py` `LlamaForCausalLM` (17 layers, so the reference's
hard-wired `update_layer=16` hooks the input of the last one) with `set_qformer_and_proj(...)`; VPG-C's tensors are
random (the authors zero-initialise the projections and train them). The object is a `Cheetah_Vicuna` (its methods
run unchanged: `encode_img`, `prompt_process`) whose parts are assigned in `__init__`'s order, without its
`__init__` (which downloads ViT-g, BERT and the BLIP-2 checkpoint).

The LLaMA-2 flavour uses its own files (`cheetah_llama2.py`, `modeling_llama2.py`, `conversation_llama2.py`: `[INST]`
prompts, segments padded with UNK 0) and is written the same way with `llama2` in the names.

Files written under `packages/pretrained/src/cheetah/__fixtures__/tiny-vicuna/` (and `tiny-llama2/`), in the authors' layouts:
- `eva_vit_g.pth`: the bare ViT state dict as LAVIS ships it: no prefix, F16, one block more than the model builds
  (`create_eva_vit_g` loads it non-strictly);
- `blip2_pretrained_flant5xxl.pth`: `{"model": ...}` of a BLIP-2 stage-1 checkpoint: `Qformer.*` with its text side
  (word/position embeddings tied to `cls.predictions.decoder`, the text FFNs), `query_tokens`, `ln_vision.*` and the
  ITC/ITM heads `vision_proj`, `text_proj`, `itm_head`, `temp`;
- `vicuna/`: an HF LLaMA directory (`config.json`, `pytorch_model-0000{1,2}-of-00002.bin` + index), the
  `LlamaForCausalLM` state dict with its persistent `rotary_emb.inv_freq` buffers;
- `cheetah_vicuna.pth`: `{"model": ...}` as LAVIS' runner saves a checkpoint: the state dict without the frozen
  parameters (everything but VPG-C's and `llama_proj`, which no other file provides), so it keeps the buffers (`position_ids`, `inv_freq`) and the Q-Former a
  second time under `llama_model.model.Qformer.*` (`named_parameters` lists a shared module once);
- `cheetah_vicuna.yaml` (model config: `configs/models/cheetah_vicuna.yaml`'s keys) and `cheetah_eval_vicuna.yaml`
  (`eval_configs/cheetah_eval_vicuna.yaml`'s keys, local relative paths);
- `expected.safetensors`: token segments, pixel values and logits of three runs (float64 weights = the files' values):
  * `batch_answer`: `Chat.batch_answer` (`conversation.py`) with two contexts of different lengths and 2 images each:
    left-padded segments; `generate` is intercepted and its first step is run as HF's `generate` runs it
    (`prepare_inputs_for_generation`: positions `cumsum(mask) - 1`, then the forward with VPG-C at `update_layer`
    16, Chat's default); then one cached decode step with the greedy tokens;
  * `answer`: `Chat.answer` on one context with 2 images, `update_layer=2` (the switch);
  * `prompt_process`: `Cheetah_Vicuna.forward`'s prompt part: `prompt_process` (segments right-padded, positions
    counting through the padding), BOS prepended, the `llama_model` call with `input_part_targets_len` the last real
    input token, `update_layer` 16 (no answer tokens: the logits of the prompt).
  Images are given as pixel values (`vis_processor` is the identity here; the BLIP-2 eval transform is not part of
  this parity). The tokenizer is a stand-in (3-character chunks hashed into the vocabulary; BOS 1, EOS 2 = pad, as
  `llama_tokenizer.pad_token = eos_token`): the fixture records the ids each segment got.
The 4-D attention mask is clamped at float32's minimum (see `main`). Dropout is off (`.eval()`): the reference never calls it, so its Q-Former keeps dropout 0.1 at inference; the
fixture is the deterministic function. Weights are stored F32 (ViT F16) and run in float64.
"""
import collections
import copy
import contextlib
import functools
import importlib.util
import json
import os
import sys
import types

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import ROOT, reference_root, seed, stub_module, write_json, write_safetensors  # noqa: E402

_spec = importlib.util.spec_from_file_location("cheetah_module_fixture", os.path.join(HERE, "cheetah.py"))
fx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fx)  # its main() only runs as a script

FIXTURES = os.path.join(ROOT, "packages", "pretrained", "src", "cheetah", "__fixtures__")

# ---------------------------------------------------------------- sizes
S, P, DV, VIT_DEPTH, VIT_HEADS = 8, 4, 16, 2, 2  # 2 × 2 patches + CLS = 5 ViT tokens
NQ, DQ = 4, 16
H, LAYERS, VOCAB = 16, 17, 40
BOS, EOS, UNK = 1, 2, 0


class Variant(types.SimpleNamespace):
    """What differs between the Vicuna and the LLaMA-2 Cheetah (their own model, LLaMA and conversation files)."""


VARIANTS = {
    "vicuna": Variant(name="vicuna", model_file="cheetah_vicuna", cls="Cheetah_Vicuna", llama_file="modeling_llama",
                      conversation="conversation", pad=EOS,  # llama_tokenizer.pad_token = eos_token
                      template="###Human: {} ###Assistant: ", end_sym="###", llm_extra={},
                      # the YAMLs: cheetah_vicuna.yaml's, cheetah_eval_vicuna.yaml's (quoted as written there)
                      vit_precision="fp16", llm_comment="Vicuna", eval_max_txt_len=160, eval_end_sym="'###'",
                      eval_template="'###Human: {} ###Assistant: '"),
    "llama2": Variant(name="llama2", model_file="cheetah_llama2", cls="Cheetah_Llama2", llama_file="modeling_llama2",
                      conversation="conversation_llama2", pad=UNK,  # llama_tokenizer.pad_token = unk_token
                      template="[INST] <<SYS>>\n\n<</SYS>>\n\n{} [/INST]", end_sym="</s>",
                      llm_extra=dict(num_key_value_heads=2, pretraining_tp=1, rope_scaling=None),
                      vit_precision="bf16", llm_comment="llama2", eval_max_txt_len=360, eval_end_sym="</s>",
                      eval_template="'[INST] <<SYS>>\\n\\n<</SYS>>\\n\\n{} [/INST]'"),
}


class Captured(Exception):
    """Raised by the intercepted `generate` to hand its keyword arguments back."""

    def __init__(self, kwargs):
        super().__init__("generate intercepted")
        self.kwargs = kwargs


class TokenizerOutput(dict):
    def __getattr__(self, name):
        return self[name]

    def to(self, device):
        return self


class StandInTokenizer:
    """`LlamaTokenizer` stand-in with the calls Cheetah makes: `tok(text or list, return_tensors='pt', padding=...,
    add_special_tokens=...)`, `padding_side`, `pad_token_id` (the variant's), `bos_token_id`."""

    bos_token_id, eos_token_id = BOS, EOS

    def __init__(self, pad_token_id):
        self.pad_token_id = pad_token_id
        self.padding_side = "right"
        self.truncation_side = "right"
        self.calls = []  # the unpadded rows of each call: the ids each prompt segment got

    @staticmethod
    def encode_text(text):
        return [3 + sum(map(ord, text[i:i + 3])) % (VOCAB - 3) for i in range(0, len(text), 3)]

    def __call__(self, text, return_tensors="pt", padding=False, add_special_tokens=True, **kwargs):
        texts = [text] if isinstance(text, str) else list(text)
        rows = [([BOS] if add_special_tokens else []) + self.encode_text(t) for t in texts]
        self.calls.append(rows)
        width = max(len(r) for r in rows)
        assert padding or all(len(r) == width for r in rows)
        ids, mask = [], []
        for r in rows:
            pad = [self.pad_token_id] * (width - len(r))
            ones, zeros = [1] * len(r), [0] * (width - len(r))
            ids.append(pad + r if self.padding_side == "left" else r + pad)
            mask.append(zeros + ones if self.padding_side == "left" else ones + zeros)
        return TokenizerOutput(input_ids=torch.tensor(ids, dtype=torch.long), attention_mask=torch.tensor(mask, dtype=torch.long))


def load_file(root, relative, name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(root, "Cheetah", *relative.split("/")))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def install_stubs(root):
    fx.install_transformers_stubs()

    class StoppingCriteria:
        def __init__(self, *args, **kwargs):
            pass

    stub_module("transformers", LlamaTokenizer=None, AutoTokenizer=None, AutoModelForCausalLM=None,
                StoppingCriteria=StoppingCriteria, StoppingCriteriaList=list)
    # conversation_llama2's batch_answer opens each image with PIL (`Image.open(x).convert('RGB')`): here x is a tensor
    opened = lambda x: types.SimpleNamespace(convert=lambda mode: x)
    stub_module("PIL", Image=types.SimpleNamespace(Image=type("Image", (), {}), open=opened))
    stub_module("timm.models.layers", drop_path=None, to_2tuple=lambda x: x if isinstance(x, tuple) else (x, x),
                trunc_normal_=lambda t, std=1.0: nn.init.trunc_normal_(t, std=std))
    stub_module("timm.models.registry", register_model=lambda f: f)
    registry = types.SimpleNamespace(register_model=lambda name: (lambda cls: cls),
                                     register_processor=lambda name: (lambda cls: cls))
    stub_module("cheetah.common.registry", registry=registry)
    stub_module("cheetah.common.dist_utils", download_cached_file=None)
    stub_module("cheetah.common.utils", is_url=lambda s: False)

    class Blip2Base(nn.Module):  # the parts of blip2.Blip2Base / BaseModel that the methods run here use
        @property
        def device(self):
            return list(self.parameters())[0].device

    stub_module("cheetah.models.blip2", Blip2Base=Blip2Base, disabled_train=lambda self, mode=True: self)
    qformer = load_file(root, "cheetah/models/Qformer.py", "cheetah.models.Qformer")
    eva = load_file(root, "cheetah/models/eva_vit.py", "cheetah.models.eva_vit")
    for v in VARIANTS.values():
        v.llama = load_file(root, f"cheetah/models/{v.llama_file}.py", f"cheetah.models.{v.llama_file}")
        v.model = load_file(root, f"cheetah/models/{v.model_file}.py", f"cheetah.models.{v.model_file}")
        v.model.contextlib = contextlib  # `maybe_autocast` uses contextlib on CPU, which the model files never import
        v.chat = load_file(root, f"cheetah/conversation/{v.conversation}.py", f"cheetah.conversation.{v.conversation}")
        # The 4-D mask with float32's semantics: in float64, finfo.min + finfo.min is -inf, which the reference's
        # float32 softmax turns into NaN on fully masked rows (left padding) and spreads to the whole sample; the
        # released fp16 / fp32 runs clamp it to the dtype minimum and give a uniform row. Clamped at float32's minimum.
        prepare_mask = v.llama.LlamaModel._prepare_decoder_attention_mask
        v.llama.LlamaModel._prepare_decoder_attention_mask = (
            lambda self, *args, _f=prepare_mask: _f(self, *args).clamp(min=torch.finfo(torch.float32).min))
    return qformer, eva


def f32(t):
    return t.float().double()


def build(qformer_mod, eva_mod, v):
    """The Cheetah_Vicuna / Cheetah_Llama2 object, its parts assigned in `__init__`'s order, plus the full ViT and BLIP-2 dicts."""
    vit_args = dict(img_size=S, patch_size=P, use_mean_pooling=False, embed_dim=DV, num_heads=VIT_HEADS, mlp_ratio=4.3637,
                    qkv_bias=True, drop_path_rate=0.0, norm_layer=functools.partial(nn.LayerNorm, eps=1e-6), use_checkpoint=False)
    # eva_vit_g.pth: one block more than the model builds, F16
    released_vit = eva_mod.VisionTransformer(depth=VIT_DEPTH + 1, **vit_args)
    fx.randomize(released_vit, std=0.2)
    vit_file = collections.OrderedDict((k, v.half()) for k, v in released_vit.state_dict().items())
    visual_encoder = eva_mod.VisionTransformer(depth=VIT_DEPTH, **vit_args)
    missing, unexpected = visual_encoder.load_state_dict(vit_file, strict=False)  # as create_eva_vit_g
    assert not missing and unexpected and all(k.startswith(f"blocks.{VIT_DEPTH}.") for k in unexpected), unexpected

    # BLIP-2 stage 1: Q-Former with its text side, queries, ln_vision, ITC/ITM heads
    qconfig = fx.Config(vocab_size=30, hidden_size=DQ, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                        hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                        max_position_embeddings=32, layer_norm_eps=1e-12, encoder_width=DV, add_cross_attention=True,
                        cross_attention_freq=2, query_length=NQ)
    blip2_qformer = qformer_mod.BertLMHeadModel(config=qconfig)
    fx.randomize(blip2_qformer)
    blip2_qformer.cls.predictions.decoder.weight = blip2_qformer.bert.embeddings.word_embeddings.weight  # tied: one storage
    blip2 = nn.Module()
    blip2.Qformer = blip2_qformer
    blip2.ln_vision = nn.LayerNorm(DV, eps=1e-5)
    blip2.query_tokens = nn.Parameter(torch.zeros(1, NQ, DQ))
    blip2.vision_proj, blip2.text_proj, blip2.itm_head = nn.Linear(DQ, 8), nn.Linear(DQ, 8), nn.Linear(DQ, 2)
    blip2.temp = nn.Parameter(0.07 * torch.ones([]))
    fx.randomize(blip2)
    with torch.no_grad():
        blip2.query_tokens.copy_(f32(0.5 * torch.randn(1, NQ, DQ)))
    # F32 as released; converting the module (not each tensor) keeps the tied embedding one storage
    blip2_file = {"model": copy.deepcopy(blip2).float().state_dict()}

    # the LLM: the authors' LlamaForCausalLM (HF 4.28-era LLaMA with VPG-C in LlamaModel.forward)
    llama_config = dict(vocab_size=VOCAB, hidden_size=H, intermediate_size=24, num_hidden_layers=LAYERS, num_attention_heads=2,
                        hidden_act="silu", max_position_embeddings=64, rms_norm_eps=1e-6, pad_token_id=0, **v.llm_extra)
    llama_model = v.llama.LlamaForCausalLM(fx.Config(**llama_config))
    fx.randomize(llama_model, std=0.25)

    cls = getattr(v.model, v.cls)
    model = cls.__new__(cls)
    nn.Module.__init__(model)
    model.visual_encoder = visual_encoder
    model.ln_vision = nn.LayerNorm(DV, eps=1e-5)  # blip2.LayerNorm: this module with an fp16 → fp32 cast
    model.Qformer = fx.visual_qformer(qformer_mod, qconfig)
    model.query_tokens = nn.Parameter(torch.zeros(1, NQ, DQ))
    model.load_state_dict(blip2_file["model"], strict=False)  # Blip2Base.load_from_pretrained
    model.llama_tokenizer = StandInTokenizer(v.pad)
    model.llama_model = llama_model
    model.llama_proj = nn.Linear(DQ, H)
    fx.randomize(model.llama_proj)
    model.max_txt_len, model.end_sym, model.prompt_template = 160, v.end_sym, v.template
    new_query_tokens = nn.Parameter(torch.zeros(1, NQ, DQ))
    qformer_proj, llm_proj = nn.Linear(H, DQ), nn.Linear(DQ, H)  # zero_module(...) in the reference; trained values here
    fx.randomize(qformer_proj, std=0.3)
    fx.randomize(llm_proj, std=0.3)
    model.llama_model.set_qformer_and_proj(model.Qformer, qformer_proj, llm_proj, new_query_tokens)
    model.load_state_dict({"llama_model.model.query_tokens": blip2_file["model"]["query_tokens"]}, strict=False)  # init_query_tokens_value
    model.update_layer = 16
    with torch.no_grad():  # the trained VPG-C queries moved away from BLIP-2's
        new_query_tokens.add_(f32(0.2 * torch.randn(1, NQ, DQ)))
    # Trained (so saved): VPG-C's tensors and llama_proj, which no other file holds (BLIP-2 has no LLM projection;
    # the eval YAML's freeze_llama_proj only affects requires_grad, the released checkpoint must carry it).
    for name, p in model.named_parameters():  # freeze_vit / freeze_qformer, frozen LLaMA
        p.requires_grad = name.startswith("llama_proj.") or (
            name.startswith("llama_model.model.") and name.split(".")[2] in ("query_tokens", "qformer_proj", "llm_proj"))
    model.eval()  # dropout off (see the module docstring)
    return model, vit_file, blip2_file, llama_config


def lavis_checkpoint(model):
    """LAVIS `RunnerBase._save_checkpoint`: the state dict minus the parameters that do not require grad."""
    grad = {k: v.requires_grad for k, v in model.named_parameters()}
    state = model.state_dict()
    for k in list(state.keys()):
        if k in grad and not grad[k]:
            del state[k]
    return {"model": collections.OrderedDict((k, v.float() if v.is_floating_point() else v) for k, v in state.items()), "epoch": 4}


def first_step(llama_model, kw, use_cache=False):
    """HF `generate`'s first step: `prepare_inputs_for_generation` (positions from the mask), then the forward."""
    inputs = llama_model.prepare_inputs_for_generation(
        torch.zeros(kw["inputs_embeds"].shape[0], 0, dtype=torch.long), inputs_embeds=kw["inputs_embeds"],
        attention_mask=kw.get("attention_mask"), image_position_list=kw["image_position_list"],
        input_part_targets_len=kw["input_part_targets_len"], all_image_embeds=kw["all_image_embeds"],
        update_layer=kw["update_layer"], use_cache=use_cache)
    return llama_model(**inputs, return_dict=True)


def intercept(chat, call):
    def generate(**kwargs):
        raise Captured(kwargs)

    chat.model.llama_model.generate = generate
    try:
        call()
    except Captured as captured:
        return captured.kwargs
    raise AssertionError("generate was not called")


def main():
    root = reference_root()
    qformer_mod, eva_mod = install_stubs(root)
    for v in VARIANTS.values():
        run(qformer_mod, eva_mod, v)


def run(qformer_mod, eva_mod, v):
    seed(0)
    model, vit_file, blip2_file, llama_config = build(qformer_mod, eva_mod, v)
    chat = v.chat.Chat(model, vis_processor=lambda image: image, device="cpu")
    tok = model.llama_tokenizer
    # batch_answer cuts its contexts at `<ImageHere>`, answer at `<Img><HereForImage></Img>`
    contexts = ["<ImageHere> <ImageHere> What is this?", "Look at <ImageHere> then <ImageHere> Which shows more, and why?"]
    answer_context = "Look at <Img><HereForImage></Img> then <Img><HereForImage></Img> Which shows more, and why?"
    images = [[f32(torch.randn(3, S, S)) for _ in range(2)] for _ in contexts]
    out = {}
    with torch.no_grad():
        # 1. Chat.batch_answer: left-padded segments, generate's positions, update_layer 16 (Chat's default)
        tok.calls = []
        kw = intercept(chat, lambda: chat.batch_answer(images, contexts))
        result = first_step(model.llama_model, kw, use_cache=True)
        record_segments(out, "batch_answer", tok.calls)
        out["batch_answer.attention_mask"] = kw["attention_mask"]
        out["batch_answer.logits"] = result.logits
        out["batch_answer.image_positions"] = torch.tensor(kw["image_position_list"])
        out["batch_answer.pixel_values"] = torch.stack([torch.stack(s) for s in images]).reshape(-1, 3, S, S)
        # one cached decode step with the greedy tokens, as generate's second step
        nxt = result.logits[:, -1, :].argmax(-1, keepdim=True)
        mask2 = torch.cat([kw["attention_mask"], torch.ones(len(contexts), 1, dtype=torch.long)], 1)
        step = model.llama_model.prepare_inputs_for_generation(nxt, past_key_values=result.past_key_values, attention_mask=mask2,
                                                               update_layer=16, use_cache=True)
        out["batch_answer.next_tokens"] = nxt
        out["batch_answer.step2_logits"] = model.llama_model(**step, return_dict=True).logits

        # 2. Chat.answer, one context, update_layer 2 (the switch)
        tok.calls = []
        kw = intercept(chat, lambda: chat.answer(images[1], answer_context, update_layer=2))
        assert "attention_mask" not in kw  # generate then masks nothing: positions 0..L-1
        out["answer.logits"] = first_step(model.llama_model, kw).logits
        unhooked = first_step(model.llama_model, {**kw, "update_layer": LAYERS}).logits  # idx never equals it: no VPG-C
        assert (unhooked - out["answer.logits"]).abs().max() > 1e-2, "VPG-C should change the logits"
        record_segments(out, "answer", tok.calls)
        out["answer.pixel_values"] = torch.stack(images[1])
        out["answer.image_positions"] = torch.tensor(kw["image_position_list"])

        # 3. Cheetah_Vicuna.forward's prompt part: prompt_process (right-padded segments), BOS, the llama_model call
        prompts = [model.prompt_template.format(p) for p in ["<HereForImage> <HereForImage> What is this?",
                                                             "<HereForImage> and <HereForImage> Describe both, briefly."]]
        pixel = torch.stack([torch.stack(s) for s in images])  # [B, n, 3, S, S]
        img_list, vit_list, att_list = [], [], []
        for j in range(pixel.size(1)):
            embeds_j, atts_j, vit_j = model.encode_img(pixel[:, j])
            img_list.append(embeds_j)
            att_list.append(atts_j)
            vit_list.append(vit_j)
        tok.padding_side = "right"
        tok.calls = []
        embeds, atts, positions = model.prompt_process(img_list, att_list, prompts)
        bos = model.llama_model.model.embed_tokens(torch.full((len(prompts), 1), BOS, dtype=torch.long))
        embeds = torch.cat([bos, embeds], 1)
        atts = torch.cat([torch.ones(len(prompts), 1, dtype=torch.long), atts], 1)
        last = torch.tensor([int(torch.nonzero(row).squeeze()[-1]) for row in atts])  # concat_text_input_output's index
        logits = model.llama_model(inputs_embeds=embeds, attention_mask=atts, return_dict=True, update_layer=model.update_layer,
                                   image_position_list=positions, input_part_targets_len=last,
                                   all_image_embeds=torch.stack(vit_list, dim=1)).logits
        record_segments(out, "prompt_process", tok.calls)
        out["prompt_process.attention_mask"] = atts
        out["prompt_process.logits"] = logits
        out["prompt_process.image_positions"] = torch.tensor(positions)
        out["prompt_process.last_prompt_index"] = last
        out["prompt_process.pixel_values"] = out["batch_answer.pixel_values"]

    assert all(torch.isfinite(v).all() for v in out.values() if v.is_floating_point())
    write_files(v, model, vit_file, blip2_file, llama_config, out)


def record_segments(out, prefix, calls):
    """The tokenizer's calls (one per segment position, one row per sample) as sample-major segments: one flat int64
    vector plus lengths `[B, n+1]` (safetensors has no ragged arrays)."""
    segments = [[call[b] for call in calls] for b in range(len(calls[0]))]
    out[f"{prefix}.segment_ids"] = torch.tensor([t for sample in segments for seg in sample for t in seg], dtype=torch.long)
    out[f"{prefix}.segment_lengths"] = torch.tensor([[len(seg) for seg in sample] for sample in segments], dtype=torch.long)


def write_files(v, model, vit_file, blip2_file, llama_config, expected):
    OUT = os.path.join(FIXTURES, f"tiny-{v.name}")
    llm = v.name  # the LLM directory
    os.makedirs(os.path.join(OUT, llm), exist_ok=True)
    torch.save(vit_file, os.path.join(OUT, "eva_vit_g.pth"))
    torch.save(blip2_file, os.path.join(OUT, "blip2_pretrained_flant5xxl.pth"))
    llm_state = collections.OrderedDict((k, v.float()) for k, v in model.llama_model.state_dict().items()
                                        if not k.startswith(("model.Qformer.", "model.query_tokens", "model.qformer_proj.", "model.llm_proj.")))
    keys = list(llm_state)
    shards = [keys[: len(keys) // 2], keys[len(keys) // 2:]]
    weight_map = {}
    for i, shard in enumerate(shards):
        name = f"pytorch_model-{i + 1:05d}-of-{len(shards):05d}.bin"
        torch.save(collections.OrderedDict((k, llm_state[k]) for k in shard), os.path.join(OUT, llm, name))
        weight_map.update({k: name for k in shard})
    write_json(os.path.join(OUT, llm, "pytorch_model.bin.index.json"),
               {"metadata": {"total_size": sum(v.numel() * 4 for v in llm_state.values())}, "weight_map": weight_map}, sort_keys=False)
    hf_config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "bos_token_id": BOS, "eos_token_id": EOS,
                 "torch_dtype": "float32", "tie_word_embeddings": False, "use_cache": True, **llama_config}
    write_json(os.path.join(OUT, llm, "config.json"), hf_config)
    ckpt = lavis_checkpoint(model)
    assert any(k.startswith("llama_model.model.Qformer.") for k in ckpt["model"]) and "llama_model.model.qformer_proj.weight" in ckpt["model"]
    torch.save(ckpt, os.path.join(OUT, f"cheetah_{v.name}.pth"))
    with open(os.path.join(OUT, f"cheetah_{v.name}.yaml"), "w") as f:
        f.write(model_yaml(v))
    with open(os.path.join(OUT, f"cheetah_eval_{v.name}.yaml"), "w") as f:
        f.write(eval_yaml(v))
    config = {"image_size": S, "patch_size": P, "vit_width": DV, "vit_depth": VIT_DEPTH, "vit_heads": VIT_HEADS,
              "num_query_token": NQ, "qformer_width": DQ, "llm_hidden": H, "llm_layers": LAYERS, "vocab": VOCAB}
    write_safetensors(os.path.join(OUT, "expected.safetensors"), expected, {
        "config": json.dumps(config),
        "source": "DCDmllm/Cheetah cheetah/conversation/conversation.py Chat.batch_answer / Chat.answer, "
                  f"cheetah/models/{v.model_file}.py prompt_process + encode_img, cheetah/models/{v.llama_file}.py (VPG-C)",
    })
    for name in sorted(os.listdir(OUT)) + [f"{llm}/{n}" for n in sorted(os.listdir(os.path.join(OUT, llm)))]:
        path = os.path.join(OUT, name)
        if os.path.isfile(path):
            print(f"  {name}: {os.path.getsize(path)} bytes")


def model_yaml(v) -> str:
    """`cheetah/configs/models/cheetah_<name>.yaml` at the tiny size (the two flavours differ in arch, ViT precision and
    the LLM directory)."""
    return f"""model:
  arch: cheetah_{v.name}
  # vit encoder
  image_size: {S}
  drop_path_rate: 0
  use_grad_checkpoint: False
  vit_precision: "{v.vit_precision}"
  freeze_vit: True
  freeze_qformer: True
  freeze_llama_proj: True

  # Q-Former
  num_query_token: {NQ}

  # {v.llm_comment}
  llama_model: "{v.name}"

  # generation configs
  prompt: ""

preprocess:
    vis_processor:
        train:
          name: "blip2_image_train"
          image_size: {S}
        eval:
          name: "blip2_image_eval"
          image_size: {S}
    text_processor:
        train:
          name: "blip_caption"
        eval:
          name: "blip_caption"
"""


def eval_yaml(v) -> str:
    """`eval_configs/cheetah_eval_<name>.yaml` with local relative paths (the flavours differ in the keys the Variant
    holds: text length, end symbol, prompt template)."""
    return f"""model:
  arch: cheetah_{v.name}
  model_type: pretrain_{v.name}
  freeze_vit: true
  freeze_qformer: true
  freeze_llama_proj: true
  max_txt_len: {v.eval_max_txt_len}
  end_sym: {v.eval_end_sym}
  prompt_template: {v.eval_template}
  q_former_model: 'blip2_pretrained_flant5xxl.pth'
  ckpt: 'cheetah_{v.name}.pth'

preprocess:
  vis_processor:
    train:
      name: "blip_image_train"
      image_size: {S}
    eval:
      name: "blip_image_eval"
      image_size: {S}
  text_processor:
    train:
      name: "blip_caption"
    eval:
      name: "blip_caption"
"""


if __name__ == "__main__":
    main()
