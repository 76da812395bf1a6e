"""VGG-19 perceptual loss (paper eq. 8) and the loading / checking of its ImageNet weights.

The perceptual loss needs torchvision's ImageNet VGG-19, the file ``vgg19-dcbb9e9d.pth``
(548 MB) from :data:`VGG19_URL`. torchvision is *not* a dependency: :class:`VGG19Features`
re-creates ``torchvision.models.vgg19().features`` layer for layer, with the same
``state_dict`` keys, so the official file loads as is. Get it once with
:func:`download_vgg19` and point ``COURSEKIT_VGG19_WEIGHTS`` at it (or pass
``weights_path``). torchvision names its files ``<name>-<first 8 hex digits of the file's
SHA-256>.pth``; :func:`load_vgg19_weights` therefore checks that the file's SHA-256 starts
with ``dcbb9e9d`` (:data:`VGG19_SHA256`), the same check ``torch.hub`` makes when
torchvision downloads it. Without the file, :class:`PerceptualLoss` falls back to the same
architecture with fixed random weights and warns (see its docstring).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import torch
from torch import nn

VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
"""torchvision's ImageNet VGG-19 (``torchvision.models.VGG19_Weights.IMAGENET1K_V1``)."""

VGG19_FILENAME = "vgg19-dcbb9e9d.pth"

VGG19_SHA256 = "dcbb9e9d"
"""Expected start of the SHA-256 of :data:`VGG19_FILENAME`: torchvision's file names carry
the first 8 hex digits of the file's SHA-256 (``torch.hub`` checks exactly this prefix)."""

VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
             512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
"""torchvision's configuration "E": conv widths, ``"M"`` = 2x2 max-pool."""

VGG19_LAYERS = {"relu1_2": 3, "relu2_2": 8, "relu3_4": 17, "relu4_4": 26}
"""Index in ``features`` of each ReLU output used by the perceptual loss. The layout
(as torchvision's): convs at 0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34,
each followed by its ReLU; max-pools at 4, 9, 18, 27, 36. Resolution of each: 1, 1/2,
1/4, 1/8 of the input."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

WEIGHTS_ENV = "COURSEKIT_VGG19_WEIGHTS"
"""Environment variable naming the local ``vgg19-dcbb9e9d.pth`` (used when no path given)."""


class VGG19Features(nn.Module):
    """VGG-19's convolutional part in plain torch, with torchvision's layout and key names
    (``features.0.weight``, ``features.0.bias``, ..., ``features.34.bias``).

    Input: ``(N, 3, H, W)`` RGB in [-1, 1]; it is mapped to [0, 1] and normalised with the
    ImageNet mean/std (what the weights were trained on). Output: a dict ``{layer name:
    activation}`` for ``layers`` (keys of :data:`VGG19_LAYERS`), e.g. ``relu1_2`` is
    ``(N, 64, H, W)`` and ``relu4_4`` ``(N, 512, H/8, W/8)``. Layers after the deepest one
    asked for are kept (so the official state_dict loads strictly) but never run.

    The weights are frozen (``requires_grad=False``); gradients still flow to the input.
    A fresh module has random (kaiming, seeded by ``seed``) weights: load real ones with
    ``load_state_dict(load_vgg19_weights(path))``.
    """

    def __init__(self, layers=tuple(VGG19_LAYERS), seed: int = 0):
        super().__init__()
        unknown = set(layers) - set(VGG19_LAYERS)
        if unknown or not layers:
            raise ValueError(f"unknown VGG-19 layers {sorted(unknown)}; known: {list(VGG19_LAYERS)}")
        self.layers = tuple(layers)
        modules, c_in = [], 3
        for v in VGG19_CFG:
            if v == "M":
                modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:  # not in-place: the returned activations must not be overwritten
                modules += [nn.Conv2d(c_in, v, kernel_size=3, padding=1), nn.ReLU()]
                c_in = v
        self.features = nn.Sequential(*modules)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.reset_random(seed)
        self.requires_grad_(False)
        self.eval()

    @torch.no_grad()
    def reset_random(self, seed: int = 0) -> None:
        """Deterministic random weights (kaiming normal for ReLU, zero biases) from ``seed``,
        independent of the global RNG: the same on every machine and run."""
        gen = torch.Generator().manual_seed(int(seed))
        for module in self.features:
            if isinstance(module, nn.Conv2d):
                fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
                std = (2.0 / fan_in) ** 0.5
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * std)
                module.bias.zero_()

    def train(self, mode: bool = True) -> "VGG19Features":
        return super().train(False)  # a fixed feature extractor: always in eval mode

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``(N, 3, H, W)`` in [-1, 1] -> ``{layer: (N, C_l, H_l, W_l)}``."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected RGB images (N, 3, H, W), got {tuple(x.shape)}")
        x = ((x + 1.0) * 0.5 - self.mean) / self.std
        wanted = {VGG19_LAYERS[name]: name for name in self.layers}
        last, out = max(wanted), {}
        for i, module in enumerate(self.features):
            x = module(x)
            if i in wanted:
                out[wanted[i]] = x
            if i == last:
                break
        return out


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file (read in 1 MB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def load_vgg19_weights(path: str | Path, sha256: str | None = VGG19_SHA256) -> dict:
    """The ``features.*`` tensors of a VGG-19 checkpoint, for :class:`VGG19Features`.

    path: torchvision's ``vgg19-dcbb9e9d.pth`` (or any state_dict with the same
        ``features.*`` keys and shapes; its ``classifier.*`` keys are dropped).
    sha256: the expected SHA-256 of the file, in full or a prefix (default
        :data:`VGG19_SHA256`, the official file); None skips the check (own files).

    Raises ``FileNotFoundError`` (no file), ``ValueError`` naming the file on a checksum
    mismatch (wrong, corrupt or partly downloaded file) or on missing / misshapen keys.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such VGG-19 weights file (get the official one "
                                f"with coursekit.losses.download_vgg19, from {VGG19_URL})")
    if sha256 is not None:
        digest = sha256_of(path)
        if not digest.startswith(sha256.lower()):
            raise ValueError(f"{path}: SHA-256 {digest} does not match the expected "
                             f"{sha256}...: not the official {VGG19_FILENAME} (wrong file or "
                             f"a corrupt / partial download); download it again from {VGG19_URL}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    features = {k: v for k, v in state.items() if k.startswith("features.")}
    expected = vgg19_shapes()
    missing = sorted(set(expected) - set(features), key=_key_order)
    if missing:
        raise ValueError(f"{path}: not a VGG-19 state_dict, missing {len(missing)} key(s) "
                         f"such as {missing[:3]}")
    for key, shape in expected.items():
        if tuple(features[key].shape) != shape:
            raise ValueError(f"{path}: {key} has shape {tuple(features[key].shape)}, "
                             f"VGG-19 needs {shape}")
    return {k: features[k].float() for k in expected}


def vgg19_shapes() -> dict[str, tuple]:
    """``{state_dict key: shape}`` of :class:`VGG19Features` (= torchvision's ``features.*``),
    in order, without building the network."""
    shapes, index, c_in = {}, 0, 3
    for v in VGG19_CFG:
        if v == "M":
            index += 1
        else:
            shapes[f"features.{index}.weight"] = (v, c_in, 3, 3)
            shapes[f"features.{index}.bias"] = (v,)
            index, c_in = index + 2, v
    return shapes


def _key_order(key: str) -> tuple:
    parts = key.split(".")
    return (int(parts[1]), parts[2]) if len(parts) == 3 and parts[1].isdigit() else (1 << 30, key)


def download_vgg19(dest: str | Path = ".", progress: bool = True) -> Path:
    """Download the official ImageNet VGG-19 (548 MB, :data:`VGG19_URL`) and check it.

    dest: a folder (the file is saved there as ``vgg19-dcbb9e9d.pth``) or a file path.
    Returns the file's path; an already present file with the right checksum is kept.
    Then ``export COURSEKIT_VGG19_WEIGHTS=<path>`` (or pass it as ``weights_path``).
    Needs internet access; never called by the tests or notebooks.
    """
    dest = Path(dest).expanduser()
    target = dest / VGG19_FILENAME if dest.is_dir() or not dest.suffix else dest
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_file() and sha256_of(target).startswith(VGG19_SHA256):
        return target
    torch.hub.download_url_to_file(VGG19_URL, str(target), hash_prefix=VGG19_SHA256,
                                   progress=progress)
    load_vgg19_weights(target)  # checks the hash and the keys once more
    return target


class PerceptualLoss(nn.Module):
    """Eq. 8: ``1/n sum_i mean |phi_i(real) - phi_i(generated)|`` over VGG-19 layers
    ``phi_i`` (default relu1_2, relu2_2, relu3_4, relu4_4).

    weights_path: the ImageNet weights file (:func:`download_vgg19`); None reads the path
        from the ``COURSEKIT_VGG19_WEIGHTS`` environment variable.
    sha256: expected checksum (prefix) of that file; None skips the check.
    layers, seed: the layers used; the seed of the fallback weights.

    **Fallback** without any weights file: the same VGG-19 architecture with fixed random
    weights (kaiming normal, seed ``seed``: identical on every run). A UserWarning says so.
    Random conv features still compare images at four scales (edges, local textures and
    structure), so blur and misalignment raise the loss, but they are not ImageNet features:
    numbers are not comparable with the paper's. ``self.pretrained`` tells which is used.

    ``forward(pred, target)``: ``(..., 3, H, W)`` in [-1, 1], equal shapes (e.g. ``(B, T, 3,
    H, W)``); optional ``mask`` over the leading dims selects the frames. Gradients flow to
    ``pred`` only (target features are computed without gradient). Returns a scalar.
    """

    def __init__(self, weights_path: str | Path | None = None, *,
                 sha256: str | None = VGG19_SHA256, layers=tuple(VGG19_LAYERS), seed: int = 0):
        super().__init__()
        self.vgg = VGG19Features(layers, seed=seed)
        path = weights_path if weights_path is not None else os.environ.get(WEIGHTS_ENV) or None
        self.weights_path = None if path is None else str(path)
        self.pretrained = path is not None
        if self.pretrained:
            self.vgg.load_state_dict(load_vgg19_weights(path, sha256=sha256))
        else:
            warnings.warn(
                "PerceptualLoss: no VGG-19 weights, so the perceptual loss is NOT ImageNet-based "
                "(fixed random VGG-19 weights, seed "
                f"{seed}). For the paper's loss download {VGG19_URL} (coursekit.losses."
                f"download_vgg19(folder)) and set {WEIGHTS_ENV}=/path/to/{VGG19_FILENAME} "
                "or pass weights_path.", UserWarning, stacklevel=2)

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        if pred.shape != target.shape:
            raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
        if mask is not None:
            pred, target = pred[mask], target[mask]  # (N_real, 3, H, W)
        pred, target = pred.reshape(-1, *pred.shape[-3:]), target.reshape(-1, *target.shape[-3:])
        if pred.shape[0] == 0:
            return pred.sum() * 0.0
        feats_pred = self.vgg(pred)
        with torch.no_grad():
            feats_target = self.vgg(target)
        losses = [(feats_pred[k] - feats_target[k]).abs().mean() for k in self.vgg.layers]
        return torch.stack(losses).mean()
