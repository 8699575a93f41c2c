"""PyTorch side of bench/llava-real.ts: the same LLaVA (Qwen2 decoder + CLIP tower + mlp2x_gelu projector) from
the same BF16 safetensors, same prompt and pixels, float32, 2 threads; prefill and greedy decode with a KV cache.

    /usr/bin/python3 bench/reference/llava_real.py <checkpoint dir written by llava-real.ts> <Bunny clone> [decode steps]

- Decoder: HF's `Qwen2DecoderLayer` (eager attention) and `Qwen2RMSNorm` from `modeling_qwen2.py` as Bunny vendors it
  (HF 4.37), imported from the clone at run time with the `transformers` stand-ins of
  scripts/reference-fixtures/hf_decoders.py (`load`; imported, not copied). The model loop is
  what `Qwen2Model.forward` / `Qwen2ForCausalLM.forward` run: embeddings (with the image features spliced in, as
  LLaVA's `prepare_inputs_labels_for_multimodal`), a 4-D causal mask for the prefill, positions 0.., the layers with
  a cache object offering the three `DynamicCache` methods the 4.37 attention calls, the final norm and the tied
  `lm_head` on the last position only (later HF's `num_logits_to_keep=1` in generate; @mllm's `logitsPositions`).
- Tower: `clip_reference` of scripts/reference-fixtures/vision_towers.py (a float64 re-statement of HF's
  `CLIPVisionModel`, read from that file), run here in float32; it computes all 12 layers, as HF's tower does
  with `output_hidden_states=True` before LLaVA's `feature_select` takes layer −2 without CLS.
- Weights: the safetensors headers parsed here (numpy only; the `safetensors` package is not needed), BF16 → F32
  by a 16-bit shift, copied into the modules one tensor at a time.
Prints one JSON line (times in ms; `tokens`: the greedy tokens, the first from the prefill).
"""
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.normpath(os.path.join(HERE, "..", "..", "scripts", "reference-fixtures"))
sys.path.insert(0, FIXTURES)


def read_safetensors(path: str):
    """name -> float32 numpy array (F32 / BF16 / F16), read one tensor at a time from a memory map."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = data[begin:end]
        if info["dtype"] == "BF16":
            array = (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
        elif info["dtype"] == "F16":
            array = raw.view(np.float16).astype(np.float32)
        elif info["dtype"] == "F32":
            array = np.array(raw.view(np.float32))
        else:
            raise SystemExit(f"{path}: tensor {name} has dtype {info['dtype']}")
        yield name, array.reshape(info["shape"])


def read_checkpoint(directory: str):
    index = os.path.join(directory, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
    else:
        shards = ["model.safetensors"]
    for shard in shards:
        yield from read_safetensors(os.path.join(directory, shard))


def blas_info() -> str:
    """The BLAS library this process has loaded for float32 products (Debian's torch calls whatever `libblas.so.3`
    points to: `blas/libblas.so.3` is the reference BLAS, `openblas-*/libblas.so.3` OpenBLAS), from /proc/self/maps."""
    torch.mm(torch.ones(2, 2), torch.ones(2, 2))
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "blas" in line.lower() and "/" in line}
    except OSError:
        return "unknown"
    return ", ".join(sorted(os.path.join(os.path.basename(os.path.dirname(p)), os.path.basename(p)) for p in paths)) or "none loaded"


class Cache:
    """The three `DynamicCache` methods HF 4.37's `Qwen2Attention` calls: keys / values `[B, kv, L, d]` per layer."""

    def __init__(self):
        self.keys, self.values = [], []

    def get_usable_length(self, new_length, layer_idx=0):
        return self.get_seq_length(layer_idx)

    def get_seq_length(self, layer_idx=0):
        return self.keys[layer_idx].shape[-2] if layer_idx < len(self.keys) else 0

    def update(self, key_states, value_states, layer_idx, cache_kwargs=None):
        if layer_idx == len(self.keys):
            self.keys.append(key_states)
            self.values.append(value_states)
        else:
            self.keys[layer_idx] = torch.cat([self.keys[layer_idx], key_states], -2)
            self.values[layer_idx] = torch.cat([self.values[layer_idx], value_states], -2)
        return self.keys[layer_idx], self.values[layer_idx]


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    directory, bunny = sys.argv[1], os.path.abspath(sys.argv[2])
    decode = int(sys.argv[3]) if len(sys.argv) > 3 else 16
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", 2)))
    torch.set_grad_enabled(False)

    # The fixture scripts guard their main: importing them only defines things. `hf_decoders.load` installs the
    # `transformers` stand-ins and imports Bunny's vendored HF Qwen2; `clip_reference` is the CLIP re-statement.
    import hf_decoders
    from vision_towers import clip_reference
    hf_decoders.load(bunny)
    qwen2 = hf_decoders.qwen2

    started = time.perf_counter()
    llava_dir = os.path.join(directory, "llava")
    with open(os.path.join(llava_dir, "config.json")) as f:
        cj = json.load(f)
    tower_dir = os.path.join(directory, os.path.basename(cj["mm_vision_tower"]))
    with open(os.path.join(tower_dir, "config.json")) as f:
        vc = json.load(f)
    keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "vocab_size",
            "rms_norm_eps", "rope_theta", "hidden_act", "attention_dropout", "tie_word_embeddings", "use_sliding_window", "sliding_window")
    # max_position_embeddings only sizes each layer's rotary cos/sin cache: 4096 covers the bench's positions.
    config = qwen2.Qwen2Config(**{k: cj[k] for k in keys}, max_position_embeddings=4096)
    config._attn_implementation = "eager"
    reset = nn.Linear.reset_parameters
    nn.Linear.reset_parameters = lambda self: None  # every weight is overwritten from the checkpoint below
    layers = nn.ModuleList([qwen2.Qwen2DecoderLayer(config, i) for i in range(config.num_hidden_layers)]).eval()
    norm = qwen2.Qwen2RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
    nn.Linear.reset_parameters = reset
    targets = {f"model.layers.{k}": v for k, v in layers.state_dict(keep_vars=True).items()}
    targets["model.norm.weight"] = norm.weight
    w = {}
    projector = {}
    for name, array in read_checkpoint(llava_dir):
        if name in targets:
            targets.pop(name).data.copy_(torch.from_numpy(array))
        elif name == "model.embed_tokens.weight":
            w[name] = torch.from_numpy(array)
        elif name.startswith("model.mm_projector."):
            projector[name[len("model.mm_projector."):]] = torch.from_numpy(array)
        elif not name.endswith("rotary_emb.inv_freq"):
            raise SystemExit(f"unexpected tensor {name}")
    if [k for k in targets if not k.endswith("rotary_emb.inv_freq")]:
        raise SystemExit(f"missing tensors: {sorted(targets)[:5]}")
    embed = w["model.embed_tokens.weight"]  # [V, H]; tied: lm_head = embed
    lm_head = embed if cj["tie_word_embeddings"] else None
    tower = {name: torch.from_numpy(array) for name, array in read_checkpoint(tower_dir)}
    load_s = time.perf_counter() - started

    with open(os.path.join(directory, "prompt.json")) as f:
        prompt = json.load(f)
    pixels = torch.from_numpy(np.fromfile(os.path.join(directory, "pixels.f32"), dtype=np.float32).reshape(1, 224, 224, 3))
    select = cj["mm_vision_select_layer"]

    def logits_of(h):
        return norm(h[:, -1:]) @ lm_head.T  # [B, 1, V]: the last position only (HF's num_logits_to_keep = 1)

    def run_layers(h, mask, positions, cache):
        for layer in layers:
            h = layer(h, attention_mask=mask, position_ids=positions, past_key_value=cache, use_cache=True)[0]
        return h

    def prefill():
        t0 = time.perf_counter()
        states, _ = clip_reference(tower, vc, pixels)
        features = states[select][:, 1:]  # [1, 196, Dv]: `patch` drops CLS
        visual = nn.functional.linear(nn.functional.gelu(nn.functional.linear(features, projector["0.weight"], projector["0.bias"])),
                                      projector["2.weight"], projector["2.bias"])  # [1, 196, H]
        before, after = embed[torch.tensor(prompt["before"])][None], embed[torch.tensor(prompt["after"])][None]
        h = torch.cat([before, visual, after], 1)  # [1, L, H]
        L = h.shape[1]
        mask = torch.full((L, L), torch.finfo(torch.float32).min).triu(1)[None, None]  # [1, 1, L, L] additive causal
        cache = Cache()
        logits = logits_of(run_layers(h, mask, torch.arange(L)[None], cache))
        token = int(logits[0, -1].argmax())
        return (time.perf_counter() - t0) * 1e3, cache, token, L

    cold_ms, _, _, _ = prefill()
    prefill_ms, cache, token, L = prefill()
    tokens = [token]
    t0 = time.perf_counter()
    for step in range(decode):
        h = embed[torch.tensor([[tokens[-1]]])]  # [1, 1, H]
        logits = logits_of(run_layers(h, None, torch.tensor([[L + step]]), cache))  # one query sees every cached key
        tokens.append(int(logits[0, -1].argmax()))
    decode_ms = (time.perf_counter() - t0) * 1e3
    print(json.dumps({"load_s": round(load_s, 2), "prompt_tokens": L, "prefill_cold_ms": round(cold_ms, 1), "prefill_ms": round(prefill_ms, 1),
                      "decode_steps": decode, "decode_ms": round(decode_ms, 1), "tokens": tokens,
                      "threads": torch.get_num_threads(), "torch": torch.__version__, "blas": blas_info()}))


if __name__ == "__main__":
    main()
