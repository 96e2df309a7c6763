"""Backbones by name: ``build_backbone(ModelConfig(name="iresnet50"), input_size=112)``.

Each factory's keyword parameters are the options of the ``model`` config section for it (besides
``embedding_size`` and ``input_size``, which every backbone takes).
"""

from __future__ import annotations

from ..config import ConfigError, check_options
from ..registry import Registry
from .base import Backbone
from .iresnet import DEPTHS, iresnet
from .mobilefacenet import MobileFaceNet

BACKBONES: Registry[Backbone] = Registry("backbone")


def _register_iresnet(depth: int) -> None:
    def factory(embedding_size: int = 512, input_size: int = 112, dropout: float = 0.0) -> Backbone:
        """iResNet; ``dropout`` before the final fully connected layer."""
        return iresnet(depth, embedding_size, dropout, input_size)

    BACKBONES.register(f"iresnet{depth}")(factory)


for _depth in DEPTHS:
    _register_iresnet(_depth)


@BACKBONES.register("mobilefacenet")
def mobilefacenet(
    embedding_size: int = 512, input_size: int = 112, width: int = 2, blocks: tuple[int, ...] = (1, 4, 6, 2)
) -> Backbone:
    """MobileFaceNet; ``width`` multiplies the 64/128 channels (insightface's "mbf" uses 2)."""
    return MobileFaceNet(embedding_size, tuple(blocks), width, input_size)


@BACKBONES.register("mobilefacenet_r")
def mobilefacenet_r(
    embedding_size: int = 512, input_size: int = 112, width: int = 1, blocks: tuple[int, ...] = (1, 4, 6, 2)
) -> Backbone:
    """MobileFaceNet whose stage outputs have iResNet's 64/128/256/512 channels (for distillation)."""
    return MobileFaceNet(embedding_size, tuple(blocks), width, input_size, stage_channels=(64, 128, 256))


def check_model_options(config, strict: bool = True) -> dict:
    """The model section's options, checked against the backbone's factory and typed."""
    factory = BACKBONES.get(config.name)
    return check_options(factory, config.options, "model", config.name, ("embedding_size", "input_size"), strict)


def build_backbone(config, input_size: int = 112, strict: bool = True) -> Backbone:
    """Build from a :class:`facelearn.config.ModelConfig` for square faces of ``input_size``."""
    options = check_model_options(config, strict)
    try:
        return BACKBONES.get(config.name)(embedding_size=config.embedding_size, input_size=input_size, **options)
    except ValueError as error:  # the backbone's own checks (width, input size)
        raise ConfigError(f"model {config.name!r}: {error}") from None


__all__ = ["BACKBONES", "Backbone", "MobileFaceNet", "build_backbone", "check_model_options", "iresnet"]
