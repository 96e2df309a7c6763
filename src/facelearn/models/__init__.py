"""Backbones by name: ``build_backbone("iresnet50", embedding_size=512)``."""

from __future__ import annotations

from ..registry import Registry
from .base import Backbone
from .iresnet import DEPTHS, iresnet
from .mobilefacenet import MobileFaceNet

BACKBONES: Registry[Backbone] = Registry("backbone")

for _depth in DEPTHS:
    BACKBONES.register(f"iresnet{_depth}")(
        lambda embedding_size=512, dropout=0.0, input_size=112, _d=_depth: iresnet(
            _d, embedding_size, dropout, input_size
        )
    )
BACKBONES.register("mobilefacenet")(MobileFaceNet)
BACKBONES.register("mobilefacenet_r")(
    lambda embedding_size=512, blocks=(1, 4, 6, 2), width=1, input_size=112: MobileFaceNet(
        embedding_size, blocks, width, input_size, stage_channels=(64, 128, 256)
    )
)


def build_backbone(config, input_size: int = 112) -> Backbone:
    """Build from a :class:`facelearn.config.ModelConfig` for square faces of ``input_size``."""
    factory = BACKBONES.get(config.name)
    if config.name in ("mobilefacenet", "mobilefacenet_r"):
        return factory(config.embedding_size, tuple(config.blocks), config.width, input_size)
    return factory(config.embedding_size, config.dropout, input_size)


__all__ = ["BACKBONES", "Backbone", "MobileFaceNet", "build_backbone", "iresnet"]
