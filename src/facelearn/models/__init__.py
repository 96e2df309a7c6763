"""Backbones by name: ``build_backbone("iresnet50", embedding_size=512)``."""

from __future__ import annotations

from ..registry import Registry
from .base import Backbone
from .iresnet import DEPTHS, iresnet
from .mobilefacenet import MobileFaceNet

BACKBONES: Registry[Backbone] = Registry("backbone")

for _depth in DEPTHS:
    BACKBONES.register(f"iresnet{_depth}")(
        lambda embedding_size=512, dropout=0.0, _d=_depth: iresnet(_d, embedding_size, dropout)
    )
BACKBONES.register("mobilefacenet")(MobileFaceNet)


def build_backbone(config) -> Backbone:
    """Build from a :class:`facelearn.config.ModelConfig`."""
    factory = BACKBONES.get(config.name)
    if config.name == "mobilefacenet":
        return factory(config.embedding_size, tuple(config.blocks), config.width)
    return factory(config.embedding_size, config.dropout)


__all__ = ["BACKBONES", "Backbone", "MobileFaceNet", "build_backbone", "iresnet"]
