"""Golden image-preprocessing outputs: Pillow's resampling and the references' processors.

Usage: /usr/bin/python3 scripts/reference-fixtures/image_processors.py <Parrot clone> <Cheetah clone>

Needs Debian's python3-pil (Pillow 9.4), numpy and python3-torch; torchvision and transformers are not
installed, so:
- Resizing is Pillow's own `Image.resize` (BICUBIC unless named): what HF's image processors call on
  uint8 images and what torchvision's `Resize` calls on PIL images.
- LLaVA's `expand2square` is the authors' function, imported from Parrot's `parrot/utils/mm_utils.py`
  and called as `process_images` calls it (background `tuple(int(x*255) for x in image_mean)`).
- SigLIP: the authors' `SigLipImageProcessor` (Parrot's `siglip_encoder.py`, vendored by Wings as
  `siglip.py`), whose `transformers.image_transforms` imports are stood in by `hf_resize` / `hf_rescale`
  / `hf_normalize` below: restatements of HF 4.37's functions (PIL resize of the uint8 array; `image *
  scale` in float64 cast to float32; `(image - mean) / std` in float32).
- CLIP: HF 4.37 `CLIPImageProcessor.preprocess` restated from the same functions plus
  `get_resize_output_image_size(default_to_square=False)` and `center_crop` (zero padding when the crop is
  larger than the image).
- BLIP-2: the authors' `Blip2ImageEvalProcessor` (Cheetah's `cheetah/processors/blip_processors.py`) with
  stand-ins for torchvision: `Resize((S, S), BICUBIC)` is `img.resize((S, S), Image.BICUBIC)` (what
  torchvision does for PIL images), `ToTensor` and `Normalize` restate torchvision's float32 maths
  (`from_numpy(...).permute(2, 0, 1).float().div(255)`, `sub_(mean).div_(std)`).

Writes packages/models/src/image/__fixtures__/image-processors.safetensors (inputs `image.<name>` U8
[H, W, 3]; `resize.<i>` U8 per case; `expand2square.<name>` U8; `pixel_values.<pipeline>.<name>` F32
[3, S, S]) with the cases as JSON metadata. Deterministic: re-running rewrites the file byte for byte.
"""
import importlib.util
import json
import os
import sys
import types

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, stub_module, write_safetensors  # noqa: E402

if len(sys.argv) != 3 or not all(os.path.isdir(p) for p in sys.argv[1:]):
    raise SystemExit("usage: image_processors.py <path to AIDC-AI/Parrot clone> <path to DCDmllm/Cheetah clone>")
PARROT, CHEETAH = (os.path.abspath(p) for p in sys.argv[1:])
OUT = os.path.join(ROOT, "packages", "models", "src", "image", "__fixtures__", "image-processors.safetensors")

FIRST, LAST = "channels_first", "channels_last"


# ---- HF 4.37 image_transforms, restated (only the paths these processors take on uint8 RGB input) ----
def hf_convert_to_rgb(image):
    return image if not isinstance(image, Image.Image) or image.mode == "RGB" else image.convert("RGB")


def hf_to_numpy_array(image):
    return np.array(image)


def to_channel_format(image, data_format, input_channel_dim):
    if data_format is None or data_format == input_channel_dim:
        return image
    return image.transpose((2, 0, 1)) if data_format == FIRST else image.transpose((1, 2, 0))


def infer_format(image):
    return FIRST if image.shape[0] in (1, 3) and image.shape[-1] not in (1, 3) else LAST


def hf_resize(image, size, resample, data_format=None, input_data_format=None):
    # uint8 arrays go to PIL unscaled; PIL's resize takes (width, height); the result is channels last.
    fmt = input_data_format or infer_format(image)
    pil = Image.fromarray(image if fmt == LAST else image.transpose((1, 2, 0)))
    height, width = size
    resized = np.array(pil.resize((width, height), resample=resample))
    return to_channel_format(resized, data_format or fmt, LAST)


def hf_rescale(image, scale, data_format=None, dtype=np.float32, input_data_format=None):
    return (image * scale).astype(dtype)  # uint8 · Python float → float64, then float32


def hf_normalize(image, mean, std, data_format=None, input_data_format=None):
    fmt = input_data_format or infer_format(image)
    if not np.issubdtype(image.dtype, np.floating):
        image = image.astype(np.float32)
    mean = np.array(mean, dtype=image.dtype)
    std = np.array(std, dtype=image.dtype)
    return (image - mean) / std if fmt == LAST else ((image.T - mean) / std).T


def hf_center_crop(image, size):
    """HF `center_crop` on a channels-last array: offsets floor((orig − crop) / 2), zero padding when the crop is larger."""
    crop_h, crop_w = size
    orig_h, orig_w = image.shape[:2]
    top, left = (orig_h - crop_h) // 2, (orig_w - crop_w) // 2
    bottom, right = top + crop_h, left + crop_w
    if top >= 0 and bottom <= orig_h and left >= 0 and right <= orig_w:
        return image[top:bottom, left:right]
    new_h, new_w = max(crop_h, orig_h), max(crop_w, orig_w)
    padded = np.zeros((new_h, new_w) + image.shape[2:], dtype=image.dtype)
    top_pad, left_pad = (new_h - orig_h) // 2, (new_w - orig_w) // 2
    padded[top_pad:top_pad + orig_h, left_pad:left_pad + orig_w] = image
    top, bottom, left, right = top + top_pad, bottom + top_pad, left + left_pad, right + left_pad
    return padded[max(0, top):min(new_h, bottom), max(0, left):min(new_w, right)]


def hf_clip_preprocess(image, shortest_edge, crop, mean, std, resample=Image.BICUBIC):
    """HF 4.37 CLIPImageProcessor.preprocess for one PIL image → float32 [3, crop, crop]."""
    array = hf_to_numpy_array(hf_convert_to_rgb(image))
    height, width = array.shape[:2]
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = shortest_edge, int(shortest_edge * long / short)
    size = (new_long, new_short) if width <= height else (new_short, new_long)
    array = hf_resize(array, size, resample, input_data_format=LAST)
    array = hf_center_crop(array, (crop, crop))
    array = hf_rescale(array, 1 / 255)
    array = hf_normalize(array, mean, std, input_data_format=LAST)
    return to_channel_format(array, FIRST, LAST)


# ---- the authors' files, with stand-ins for what they import ----
def load_file(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class StoppingCriteria:
    pass


stub_module("transformers", StoppingCriteria=StoppingCriteria, PretrainedConfig=type("PretrainedConfig", (), {}))
stub_module("parrot.utils.constants", IMAGE_TOKEN_INDEX=-200)
mm_utils = load_file("parrot_mm_utils", os.path.join(PARROT, "parrot", "utils", "mm_utils.py"))

stub_module("transformers.image_processing_utils", BatchFeature=lambda data, tensor_type=None: data,
            get_size_dict=lambda size, **kwargs: size)
stub_module("transformers.image_transforms", convert_to_rgb=hf_convert_to_rgb, normalize=hf_normalize,
            rescale=hf_rescale, resize=hf_resize, to_channel_dimension_format=lambda image, channel_dim, input_channel_dim=None:
            to_channel_format(image, channel_dim, input_channel_dim or infer_format(image)))
stub_module("transformers.image_utils", ChannelDimension=types.SimpleNamespace(FIRST=FIRST, LAST=LAST),
            PILImageResampling=types.SimpleNamespace(BICUBIC=Image.BICUBIC), to_numpy_array=hf_to_numpy_array)
stub_module("transformers.activations", ACT2FN={})
stub_module("transformers.modeling_outputs", BaseModelOutput=object, BaseModelOutputWithPooling=object)
stub_module("transformers.modeling_utils", PreTrainedModel=torch.nn.Module)
stub_module("transformers.utils", ModelOutput=object)
siglip = load_file("parrot_siglip_encoder", os.path.join(PARROT, "parrot", "model", "multimodal_encoder", "siglip_encoder.py"))


class Compose:
    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x


class Resize:  # torchvision.transforms.Resize((h, w), BICUBIC) on a PIL image: img.resize((w, h), BICUBIC)
    def __init__(self, size, interpolation):
        self.size, self.interpolation = size, interpolation

    def __call__(self, img):
        return img.resize(tuple(self.size[::-1]), self.interpolation)


class ToTensor:  # torchvision's to_tensor for an 8-bit RGB PIL image, in the default dtype (float32)
    def __call__(self, pic):
        img = torch.from_numpy(np.array(pic, np.uint8, copy=True)).view(pic.size[1], pic.size[0], 3)
        return img.permute((2, 0, 1)).contiguous().to(dtype=torch.get_default_dtype()).div(255)


class Normalize:  # torchvision's normalize: sub_(mean).div_(std) in the tensor's dtype
    def __init__(self, mean, std):
        self.mean, self.std = mean, std

    def __call__(self, tensor):
        mean = torch.as_tensor(self.mean, dtype=tensor.dtype)[:, None, None]
        std = torch.as_tensor(self.std, dtype=tensor.dtype)[:, None, None]
        return tensor.clone().sub_(mean).div_(std)


registry = types.SimpleNamespace(register_processor=lambda name: (lambda cls: cls))
stub_module("cheetah.common.registry", registry=registry)
stub_module("cheetah.processors.base_processor", BaseProcessor=type("BaseProcessor", (), {}))
stub_module("cheetah.processors.randaugment", RandomAugment=None)
stub_module("omegaconf", OmegaConf=None)
stub_module("torchvision.transforms", Compose=Compose, Resize=Resize, ToTensor=ToTensor, Normalize=Normalize)
stub_module("torchvision.transforms.functional", InterpolationMode=types.SimpleNamespace(BICUBIC=Image.BICUBIC))
blip = load_file("cheetah_blip_processors", os.path.join(CHEETAH, "Cheetah", "cheetah", "processors", "blip_processors.py"))


# ---- test images (seeded) ----
rng = np.random.RandomState(18)


def noise(h, w):
    return rng.randint(0, 256, size=(h, w, 3)).astype(np.uint8)


def smooth(h, w):
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([255 * x / max(w - 1, 1), 255 * y / max(h - 1, 1), 128 + 100 * np.sin(x + 2 * y)], axis=-1)
    return np.clip(base + rng.randint(-12, 13, size=(h, w, 3)), 0, 255).astype(np.uint8)


images = {"a": noise(7, 5), "b": smooth(13, 22), "c": noise(31, 17), "d": smooth(16, 16), "e": smooth(40, 9)}
tensors = {f"image.{name}": array for name, array in images.items()}

# (image, width, height, PIL filter): up, down, mixed, one axis only, odd sizes; BICUBIC mostly.
BICUBIC, BILINEAR, LANCZOS, BOX, HAMMING = Image.BICUBIC, Image.BILINEAR, Image.LANCZOS, Image.BOX, Image.HAMMING
resize_cases = [
    ("a", 12, 12, BICUBIC), ("a", 3, 2, BICUBIC), ("a", 5, 9, BICUBIC), ("a", 11, 7, BICUBIC), ("a", 1, 1, BICUBIC),
    ("b", 8, 8, BICUBIC), ("b", 40, 25, BICUBIC), ("b", 6, 13, BICUBIC), ("b", 21, 12, BICUBIC),
    ("c", 10, 10, BICUBIC), ("c", 5, 31, BICUBIC), ("c", 64, 3, BICUBIC), ("c", 4, 4, BICUBIC),
    ("d", 7, 7, BICUBIC), ("d", 33, 33, BICUBIC), ("d", 96, 96, BICUBIC), ("e", 12, 12, BICUBIC), ("e", 3, 41, BICUBIC),
    ("b", 8, 8, BILINEAR), ("c", 23, 9, BILINEAR), ("b", 8, 8, LANCZOS), ("c", 23, 9, LANCZOS),
    ("b", 8, 8, BOX), ("c", 23, 9, BOX), ("b", 8, 8, HAMMING), ("c", 23, 9, HAMMING),
]
for i, (name, w, h, f) in enumerate(resize_cases):
    tensors[f"resize.{i}"] = np.array(Image.fromarray(images[name]).resize((w, h), f))

CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
pipelines = {
    # name: (description for the metadata, fn(PIL image) → float32 [3, S, S])
    "clip": ({"kind": "clip", "shortest_edge": 10, "crop": 8},
             lambda im: hf_clip_preprocess(im, 10, 8, CLIP_MEAN, CLIP_STD)),
    "clip_small": ({"kind": "clip", "shortest_edge": 6, "crop": 8},
                   lambda im: hf_clip_preprocess(im, 6, 8, CLIP_MEAN, CLIP_STD)),
    "clip_small_odd": ({"kind": "clip", "shortest_edge": 5, "crop": 8},
                       lambda im: hf_clip_preprocess(im, 5, 8, CLIP_MEAN, CLIP_STD)),
    "clip_pad": ({"kind": "clip", "shortest_edge": 10, "crop": 10, "pad": True},
                 lambda im: hf_clip_preprocess(mm_utils.expand2square(im, tuple(int(x * 255) for x in CLIP_MEAN)),
                                               10, 10, CLIP_MEAN, CLIP_STD)),
}
siglip_processor = siglip.SigLipImageProcessor(size=(10, 10))
pipelines["siglip"] = ({"kind": "siglip", "size": 10},
                       lambda im: siglip_processor.preprocess(im, return_tensors=None)["pixel_values"][0])
pipelines["siglip_pad"] = ({"kind": "siglip", "size": 10, "pad": True},
                           lambda im: siglip_processor.preprocess(
                               mm_utils.expand2square(im, tuple(int(x * 255) for x in siglip_processor.image_mean)),
                               return_tensors=None)["pixel_values"][0])
blip_processor = blip.Blip2ImageEvalProcessor(image_size=11)
pipelines["blip2"] = ({"kind": "blip2", "image_size": 11}, lambda im: blip_processor(im).numpy())

for name, array in images.items():
    pil = Image.fromarray(array)
    tensors[f"expand2square.{name}"] = np.array(mm_utils.expand2square(pil, tuple(int(x * 255) for x in CLIP_MEAN)))
    for pipeline, (_, fn) in pipelines.items():
        out = np.asarray(fn(pil))
        assert out.dtype == np.float32 and out.shape[0] == 3, (pipeline, out.dtype, out.shape)
        # HF's center_crop clips its window to the padded canvas: an odd (crop − side) leaves that side one short.
        if pipeline == "clip_small_odd" and name == "a":
            assert out.shape[1:] == (7, 7), out.shape  # 7×5 image, crop 8: 7 rows, and cols −1…6 → 0…6
        tensors[f"pixel_values.{pipeline}.{name}"] = out

metadata = {
    "resize_cases": json.dumps([{"image": n, "width": w, "height": h, "resample": int(f)} for n, w, h, f in resize_cases]),
    "pipelines": json.dumps({name: desc for name, (desc, _) in pipelines.items()}),
    "clip_mean": json.dumps(CLIP_MEAN), "clip_std": json.dumps(CLIP_STD),
    "pillow": __import__("PIL").__version__,
}
write_safetensors(OUT, tensors, metadata)
