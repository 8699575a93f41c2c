"""Writes tiny PyTorch checkpoints (torch.save's zip format) for the `.pth` reader's tests, and the
values torch reads back from them as a safetensors file beside (float32 / int64 / bool, contiguous).

Run with Debian's python3-torch (1.13):
    /usr/bin/python3 scripts/reference-fixtures/torch_pth.py
Outputs under packages/core/src/io/__fixtures__/:
  tensors.pth          a flat dict: F32/F16/BF16/F64/I64/BOOL tensors, a transposed view, a storage
                       offset view, two tensors sharing one storage
  nested.pth           {"model": OrderedDict(...), "epoch": 3} (BLIP-2 style)
  module.pth           torch.nn.Module.state_dict() with a registered int64 buffer
  expected.safetensors torch's values: "<file>/<key>" -> contiguous tensor
  evil-os-system.pth   data.pkl calls os.system via GLOBAL + REDUCE (must be refused)
  evil-eval.pth        data.pkl calls builtins.eval via STACK_GLOBAL (protocol 4) + REDUCE (must be refused)
"""
import collections
import io
import os
import pickle
import zipfile

import torch

from common import ROOT, write_safetensors

OUT = os.path.join(ROOT, "packages", "core", "src", "io", "__fixtures__")


def expected_of(t: torch.Tensor) -> torch.Tensor:
    t = t.detach().contiguous()
    if t.dtype in (torch.float16, torch.bfloat16, torch.float64):
        return t.float()  # exact for F16/BF16; F64 rounds to nearest float32 like Float32Array.from
    return t


def save(name: str, obj, expected: dict, flat: dict) -> None:
    path = os.path.join(OUT, name)
    torch.save(obj, path)
    back = torch.load(path, weights_only=True) if "weights_only" in torch.load.__code__.co_varnames else torch.load(path)
    for key, value in flat.items():
        assert torch.equal(back_lookup(back, key), value), key
        expected[f"{name}/{key}"] = expected_of(value)
    print(f"wrote {os.path.relpath(path, ROOT)}")


def back_lookup(obj, key: str):
    if key in obj:
        return obj[key]
    head, rest = key.split(".", 1)
    return back_lookup(obj[head], rest)


def evil(name: str, payload: bytes) -> None:
    """A zip laid out as torch.save writes it, whose data.pkl is hand-made `payload`."""
    path = os.path.join(OUT, name)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in (("archive/data.pkl", payload), ("archive/version", b"3\n")):
            z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)  # fixed time: reproducible bytes
    print(f"wrote {os.path.relpath(path, ROOT)}")


def main() -> None:
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    expected = {}

    base = torch.randn(3, 4)
    shared = torch.randn(6)
    flat = {
        "f32": torch.randn(2, 3),
        "f16": torch.randn(4, 2).half(),
        "bf16": torch.randn(3, 2).bfloat16(),
        "f64": torch.randn(5, dtype=torch.float64),
        "i64": torch.tensor([[0, -1, 7], [2147483647, -2147483648, 42]], dtype=torch.int64),
        "bool": torch.tensor([True, False, True, True]),
        "scalar": torch.tensor(2.5),
        "transposed": base.t(),                 # strides (1, 4): non-contiguous
        "offset": base.view(-1)[5:9].view(2, 2),  # storage offset 5 into base's storage
        "base": base,
        "tied_a": shared.view(2, 3),            # two views of one storage (tied weights)
        "tied_b": shared[2:].view(2, 2),
    }
    save("tensors.pth", dict(flat), expected, flat)

    inner = collections.OrderedDict([("encoder.weight", torch.randn(2, 2)), ("encoder.bias", torch.randn(2).half())])
    save("nested.pth", {"model": inner, "epoch": 3}, expected, {f"model.{k}": v for k, v in inner.items()})

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(3, 2)
            self.register_buffer("position_ids", torch.arange(4, dtype=torch.int64).view(1, 4))

    module = Tiny().state_dict()
    save("module.pth", module, expected, dict(module))

    write_safetensors(os.path.join(OUT, "expected.safetensors"), expected)

    # GLOBAL os.system; (command,) ; REDUCE ; STOP  (protocol 2)
    evil("evil-os-system.pth", b"\x80\x02cos\nsystem\nq\x00X\x0b\x00\x00\x00echo pwned!q\x01\x85q\x02Rq\x03.")
    # protocol 4: SHORT_BINUNICODE 'builtins' 'eval' STACK_GLOBAL ; ('1+1',) ; REDUCE ; STOP
    evil("evil-eval.pth", b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93\x8c\x031+1\x85R.")


if __name__ == "__main__":
    main()
