"""Plain state_dicts from elsewhere: arcface_torch's model names, and the architecture read from the keys.

insightface arcface_torch saves ``torch.save(backbone.state_dict(), "model.pt")`` and names its
backbones in ``backbones/__init__.py`` ``get_model``: ``r18`` … ``r200`` are iResNets, ``mbf`` is
MobileFaceNet with scale 2 and blocks (1, 4, 6, 2), ``mbf_large`` scale 4 and blocks (2, 8, 12, 4)
(:data:`ARCFACE_TORCH_NAMES`). Without a name the architecture is read from the keys and shapes
(:func:`infer_model_config`):

* iResNet: ``layer{1..4}.{k}.conv1.weight`` → blocks per stage → the depth (:data:`~.iresnet.DEPTHS`);
* MobileFaceNet: ``layers.0.layers.0.weight`` (64·width, 3, 3, 3) → width; the depth-wise blocks of
  ``layers.{1,3,5,7}`` → blocks; a second stage twice as wide as the first → ``mobilefacenet_r``.

Either way the embedding size comes from the final layer (``features.weight`` / ``features.layers.2.weight``)
and the input size from the last map the final layer spans (``fc.weight`` / the GDC kernel): a 256-d
model loads as 256-d. A state_dict that fits neither pattern is refused with a few of its keys.
"""

from __future__ import annotations

import math
import re

import torch

from ..config import ModelConfig
from ..errors import FacelearnError
from .iresnet import DEPTHS

# arcface_torch name → (facelearn backbone, its options)
ARCFACE_TORCH_NAMES: dict[str, tuple[str, dict]] = {
    **{f"r{depth}": (f"iresnet{depth}", {}) for depth in DEPTHS},
    "mbf": ("mobilefacenet", {"width": 2, "blocks": (1, 4, 6, 2)}),
    "mbf_large": ("mobilefacenet", {"width": 4, "blocks": (2, 8, 12, 4)}),
}
EXPECTED = (
    "arcface_torch's iResNet (conv1.weight, layer1.0.conv1.weight … layer4.K.conv2.weight, fc.weight, "
    "features.weight) or MobileFaceNet (layers.0.layers.0.weight … conv_sep.layers.0.weight, "
    "features.layers.2.weight)"
)
_IRESNET_BLOCK = re.compile(r"^layer([1-4])\.(\d+)\.conv1\.weight$")


class ArchitectureError(FacelearnError, ValueError):
    """A plain state_dict whose architecture is neither named nor recognisable."""


def _strip_module_prefix(state: dict) -> dict:
    """DataParallel / DDP saves (``module.`` before every key) as the bare backbone's keys."""
    if state and all(key.startswith("module.") for key in state):
        return {key[len("module.") :]: value for key, value in state.items()}
    return state


def _iresnet(state: dict) -> tuple[str, dict] | None:
    counts = [0, 0, 0, 0]
    for key in state:
        if match := _IRESNET_BLOCK.match(key):
            stage, block = int(match.group(1)) - 1, int(match.group(2))
            counts[stage] = max(counts[stage], block + 1)
    if not all(counts) or "fc.weight" not in state:
        return None
    depth = next((d for d, blocks in DEPTHS.items() if blocks == counts), None)
    if depth is None:
        raise ArchitectureError(
            f"an iResNet with {counts} blocks per stage, which is none of facelearn's depths "
            f"({', '.join(f'{d}: {b}' for d, b in DEPTHS.items())})"
        )
    return f"iresnet{depth}", {}


def _mobilefacenet(state: dict) -> tuple[str, dict] | None:
    stem = state.get("layers.0.layers.0.weight")
    if stem is None or stem.ndim != 4 or "features.layers.2.weight" not in state:
        return None
    first = stem.shape[0]
    blocks = []
    for layer in (1, 3, 5, 7):
        prefix = f"layers.{layer}.layers."
        found = {int(key[len(prefix) :].split(".")[0]) for key in state if key.startswith(prefix)}
        # a plain ConvBlock at layers.1 ("layers.1.layers.0.weight") is the single-block first stage
        nested = any(key.startswith(f"{prefix}0.layers.") for key in state)
        blocks.append(len(found) if nested else 1)
    second = state.get("layers.2.layers.2.layers.0.weight")
    if second is not None and second.shape[0] == 2 * first:
        return "mobilefacenet_r", {"width": first // 64, "blocks": tuple(blocks)}
    return "mobilefacenet", {"width": first // 64, "blocks": tuple(blocks)}


def embedding_and_input_size(state: dict) -> tuple[int | None, int | None]:
    """(embedding size, input size) read from the final layers' shapes; None where they do not say."""
    if "features.weight" in state and "fc.weight" in state:  # iResNet: fc over 512 maps of side input/16
        side = math.isqrt(state["fc.weight"].shape[1] // 512)
        return int(state["features.weight"].shape[0]), 16 * side if side else None
    if "features.layers.2.weight" in state:  # MobileFaceNet: GDC kernel = last map side
        kernel = state.get("features.layers.0.layers.0.weight")
        return int(state["features.layers.2.weight"].shape[0]), 16 * kernel.shape[-1] if kernel is not None else None
    return None, None


def infer_architecture(state: dict, source) -> tuple[str, dict]:
    """(facelearn backbone name, its options) from a plain state_dict's keys and shapes."""
    for reader in (_iresnet, _mobilefacenet):
        if (found := reader(state)) is not None:
            return found
    keys = list(state)
    shown = ", ".join(keys[:6]) + (", …" if len(keys) > 6 else "")
    raise ArchitectureError(
        f"{source} matches no architecture facelearn knows: its {len(keys)} keys begin {shown or '(none)'}; "
        f"expected {EXPECTED}. Name its architecture (--architecture, e.g. r50 or iresnet50) if it is one of these"
    )


def plain_model_config(
    state: dict, source, name: str | None = None, embedding_size: int | None = None
) -> tuple[ModelConfig, int, dict]:
    """(ModelConfig, input size, the state with a DDP ``module.`` prefix removed) of a plain state_dict.

    ``name``: an arcface_torch name (``r50``, ``mbf``: its options), a facelearn backbone (``mobilefacenet``:
    the width and blocks the keys show) or None (all read from the keys). ``embedding_size`` is only a
    fallback where the shapes do not say."""
    state = _strip_module_prefix(state)
    if not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise ArchitectureError(f"{source} is neither a facelearn checkpoint nor a state_dict of tensors")
    if name is None:
        backbone, options = infer_architecture(state, source)
    elif name in ARCFACE_TORCH_NAMES:
        backbone, options = ARCFACE_TORCH_NAMES[name]
    else:  # a facelearn name: its options (width, blocks) as the keys show them, where they show this backbone
        backbone, options = name, {}
        try:
            inferred, inferred_options = infer_architecture(state, source)
        except ArchitectureError:
            inferred = None
        if inferred == name:
            options = inferred_options
    size, input_size = embedding_and_input_size(state)
    config = ModelConfig(name=backbone, embedding_size=size or embedding_size or 512, options=dict(options))
    return config, input_size or 112, state
