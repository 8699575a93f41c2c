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
