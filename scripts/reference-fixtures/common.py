"""Shared helpers for the reference-fixture scripts (written here; none of the authors' code).

Each `<paper>.py` beside this file imports the authors' module classes from a local clone of their
repository (its path is the script's first argument), runs them on seeded tiny float64 configs, and
writes a safetensors fixture under `packages/<pkg>/src/__fixtures__/reference/`: the module's state
dict under the reference parameter names (PyTorch layout), its inputs, and its expected outputs.

Run with Debian's python3-torch (1.13) and numpy, e.g.
    /usr/bin/python3 scripts/reference-fixtures/wings.py /path/to/AIDC-AI/Wings
The fixtures are data computed by the authors' code; they are committed, the authors' code is not.
"""
import json
import os
import struct
import sys
import types
from typing import Dict, Optional

import numpy as np
import torch
import torch.nn as nn

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

_DTYPES = {np.dtype("float64"): "F64", np.dtype("float32"): "F32", np.dtype("int64"): "I64",
           np.dtype("int32"): "I32", np.dtype("bool"): "BOOL", np.dtype("uint8"): "U8"}


def reference_root(argv=None) -> str:
    """The clone of the authors' repository named on the command line; it must exist."""
    argv = sys.argv if argv is None else argv
    if len(argv) < 2 or not os.path.isdir(argv[1]):
        raise SystemExit(f"usage: {os.path.basename(argv[0])} <path to a local clone of the authors' repository>")
    return os.path.abspath(argv[1])


def seed(value: int = 0) -> None:
    torch.manual_seed(value)
    np.random.seed(value)
    torch.set_default_dtype(torch.float64)


def stub_module(name: str, **attrs) -> types.ModuleType:
    """Registers a minimal stand-in module (and its parents) in sys.modules, e.g. for `transformers`
    pieces the authors' files import but the fixture never calls."""
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        full = ".".join(parts[:i])
        if full not in sys.modules:
            sys.modules[full] = types.ModuleType(full)
            if i > 1:
                setattr(sys.modules[".".join(parts[:i - 1])], parts[i - 1], sys.modules[full])
    module = sys.modules[name]
    for key, value in attrs.items():
        setattr(module, key, value)
    return module


def to_numpy(value) -> np.ndarray:
    if isinstance(value, torch.Tensor) and value.dtype == torch.bfloat16:
        raise TypeError("bfloat16 tensors are written by write_safetensors (numpy has no bfloat16)")
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    array = np.ascontiguousarray(value).reshape(np.shape(value))  # ascontiguousarray makes 0-d arrays 1-d
    if array.dtype not in _DTYPES:
        raise TypeError(f"unsupported fixture dtype {array.dtype}")
    return array


def write_safetensors(path: str, tensors: Dict[str, object], metadata: Optional[Dict[str, str]] = None) -> None:
    """Writes `tensors` (name -> torch tensor or numpy array) as safetensors, names sorted, with string
    metadata (e.g. the config as JSON under "config"). A torch bfloat16 tensor is written as BF16 (its raw
    16-bit patterns)."""
    arrays, dtypes = {}, {}
    for name, value in sorted(tensors.items()):
        if isinstance(value, torch.Tensor) and value.dtype == torch.bfloat16:
            arrays[name] = value.detach().contiguous().view(torch.int16).numpy()
            dtypes[name] = "BF16"
        else:
            arrays[name] = to_numpy(value)
            dtypes[name] = _DTYPES[arrays[name].dtype]
    header, offset = {}, 0
    for name, array in arrays.items():
        header[name] = {"dtype": dtypes[name], "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for array in arrays.values():
            f.write(array.tobytes())
    print(f"wrote {os.path.relpath(path, ROOT)} ({len(arrays)} tensors, {offset} bytes)")


def fixture_path(package: str, name: str) -> str:
    return os.path.join(ROOT, "packages", package, "src", "__fixtures__", "reference", name + ".safetensors")


def write_json(path: str, value, sort_keys: bool = True) -> None:
    """A JSON file as `save_pretrained` writes one: indent 2, keys sorted, a final newline."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(value, f, indent=2, sort_keys=sort_keys)
        f.write("\n")


def write_safetensors_shards(directory: str, tensors: Dict[str, torch.Tensor], shards: int) -> None:
    """`shards` files `model-0000i-of-0000n.safetensors` (names sorted, dealt round-robin) and
    `model.safetensors.index.json` (`total_size` in the tensors' own dtypes, the weight map sorted), as a sharded
    `save_pretrained` directory holds them."""
    names = sorted(tensors)
    weight_map = {}
    for s in range(shards):
        file = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: tensors[n] for n in names[s::shards]}
        write_safetensors(os.path.join(directory, file), part, {"format": "pt"})
        weight_map.update({n: file for n in part})
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    write_json(os.path.join(directory, "model.safetensors.index.json"),
               {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))})


# ---- stand-ins for `transformers` pieces the authors' files touch (several scripts share them) ----
class Empty:
    """A type the authors' files only name (or construct and ignore)."""

    def __init__(self, *args, **kwargs):
        pass


class Registry:
    """`AutoConfig` / `AutoModelForCausalLM`: `register` does nothing."""

    @staticmethod
    def register(*args, **kwargs):
        pass


def identity_decorator(*args, **kwargs):
    """HF's docstring decorators (`add_start_docstrings` and the like)."""
    return lambda f: f


class PretrainedConfig:
    """A config as an attribute bag, with HF's defaults for the output switches."""
    output_attentions = False
    output_hidden_states = False
    use_return_dict = True

    def __init__(self, **kwargs):
        for key, value in kwargs.items():
            setattr(self, key, value)


class PreTrainedModel(nn.Module):
    """`config`, `post_init`, `device`, `dtype`: what the authors' and the vendored HF model classes use."""

    def __init__(self, config, *args, **kwargs):
        super().__init__()
        self.config = config

    def post_init(self):
        pass

    @property
    def device(self):
        return next(self.parameters()).device

    @property
    def dtype(self):
        return next(self.parameters()).dtype


class ModelOutput:
    """Attribute bag indexable like HF's `ModelOutput` (the set fields, in order)."""

    def __init__(self, **kwargs):
        self._fields = kwargs
        for key, value in kwargs.items():
            setattr(self, key, value)

    def __getitem__(self, i):
        return [v for v in self._fields.values() if v is not None][i]


def float32_causal_mask(batch: int, query_length: int, key_length: int, attention_mask=None) -> torch.Tensor:
    """HF 4.37's 4-D additive mask (`_prepare_4d_causal_attention_mask`, `AttentionMaskConverter.to_4d`):
    `[batch, 1, q, k]`, 0 where allowed and the minimum where a key lies after the query (past = k - q keys come
    first) or is padding (`attention_mask` `[batch, k]` 0). Built in float32: a float64 minimum would overflow to
    -inf in the reference's float32 softmax and turn fully masked rows into NaN, where HF's own float32 / bf16
    runs give a uniform row."""
    past = key_length - query_length
    blocked = torch.ones(query_length, key_length, dtype=torch.bool).triu(diagonal=past + 1)[None, None]
    blocked = blocked.expand(batch, 1, query_length, key_length)
    if attention_mask is not None:
        blocked = blocked | (attention_mask[:, None, None, :] == 0)
    out = torch.zeros(batch, 1, query_length, key_length, dtype=torch.float32)
    return out.masked_fill(blocked, torch.finfo(torch.float32).min)


class AttentionMaskConverter:
    """HF 4.37 `AttentionMaskConverter` (causal, no sliding window): `to_4d` turns a `[B, k]` 0/1 padding mask into
    `float32_causal_mask`'s `[B, 1, q, k]` additive mask."""

    def __init__(self, is_causal, sliding_window=None):
        assert is_causal and sliding_window is None

    def to_4d(self, attention_mask_2d, query_length, key_value_length, dtype):
        return float32_causal_mask(attention_mask_2d.shape[0], query_length, key_value_length, attention_mask_2d)


def stub_transformers_utils(model_output=object) -> None:
    """`transformers.utils` as the vendored HF modeling files import it: a logger, the docstring decorators, no
    flash attention."""
    logging = types.SimpleNamespace(get_logger=lambda name: types.SimpleNamespace(warning_once=print, warning=print))
    stub_module("transformers.utils", ModelOutput=model_output, logging=logging, add_start_docstrings=identity_decorator,
                add_start_docstrings_to_model_forward=identity_decorator, replace_return_docstrings=identity_decorator,
                is_flash_attn_2_available=lambda: False, is_flash_attn_greater_or_equal_2_10=lambda: False)


def stub_siglip_processor_imports() -> None:
    """The image-processing imports of the authors' `siglip_encoder.py` (Parrot; Wings vendors it as `siglip.py`),
    which the model fixtures import but never call."""
    stub_module("transformers.image_processing_utils", BatchFeature=dict, get_size_dict=lambda size, **kwargs: size)
    stub_module("transformers.image_transforms", convert_to_rgb=None, normalize=None, rescale=None, resize=None,
                to_channel_dimension_format=None)
    stub_module("transformers.image_utils", ChannelDimension=types.SimpleNamespace(FIRST="channels_first"),
                PILImageResampling=types.SimpleNamespace(BICUBIC=3), to_numpy_array=None)
