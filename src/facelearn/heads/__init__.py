"""Margin heads by name: ``build_head(config, embedding_size, num_classes)``."""

from __future__ import annotations

from ..config import ConfigError, check_options
from ..distributed import rank, world_size
from ..registry import Registry
from .adacos import AdaCosHead
from .adaface import AdaFaceHead
from .arcface import ArcFaceHead, CombinedMarginHead
from .base import Head, HeadOutput, MarginHead
from .circle import CircleHead, CirclePairLoss
from .cosface import CosFaceHead
from .curricularface import CurricularFaceHead
from .lsoftmax import LSoftmaxHead
from .magface import MagFaceHead
from .partial_fc import PartialFC, shard_range
from .softmax import NormSoftmaxHead, SoftmaxHead
from .sphereface import SphereFaceHead
from .subcenter import SubCenterArcFaceHead, find_outliers
from .triplet import BatchHardTripletLoss

HEADS: Registry[Head] = Registry("head")
HEADS.register("softmax")(SoftmaxHead)
HEADS.register("normsoftmax")(NormSoftmaxHead)
HEADS.register("lsoftmax")(LSoftmaxHead)
HEADS.register("sphereface")(SphereFaceHead)
HEADS.register("cosface")(CosFaceHead)
HEADS.register("arcface")(ArcFaceHead)
HEADS.register("combined")(CombinedMarginHead)
HEADS.register("magface")(MagFaceHead)
HEADS.register("circle")(CircleHead)
HEADS.register("circle_pair")(CirclePairLoss)
HEADS.register("curricularface")(CurricularFaceHead)
HEADS.register("adaface")(AdaFaceHead)
HEADS.register("subcenter_arcface")(SubCenterArcFaceHead)
HEADS.register("adacos")(AdaCosHead)
HEADS.register("triplet")(BatchHardTripletLoss)


def build_head(config, embedding_size: int, num_classes: int, strict: bool = True) -> Head:
    """Build from a :class:`facelearn.config.HeadConfig`; options left out keep the head's defaults,
    and an option the head does not take is an error naming those it does take (``strict=False``:
    dropped, for configs saved by older versions)."""
    head_class = HEADS.get(config.name)
    options = check_head_options(config, strict)
    try:
        if not config.partial_fc:
            if config.sample_rate != 1.0:
                raise ValueError("head.sample_rate samples class centres in Partial FC: set head.partial_fc=true")
            return head_class(embedding_size, num_classes, **options)
        start, stop = shard_range(num_classes, rank(), world_size())  # Partial FC: this process's classes
        return PartialFC(head_class(embedding_size, stop - start, **options), num_classes, config.sample_rate)
    except ValueError as error:  # the head's own checks of its options
        raise ConfigError(f"head {config.name!r}: {error}") from None


def check_head_options(config, strict: bool = True) -> dict:
    """The head section's options, checked against the head's constructor and typed."""
    head_class = HEADS.get(config.name)
    return check_options(head_class, config.options, "head", config.name, ("embedding_size", "num_classes"), strict)


__all__ = [
    "HEADS",
    "AdaCosHead",
    "AdaFaceHead",
    "ArcFaceHead",
    "BatchHardTripletLoss",
    "CircleHead",
    "CirclePairLoss",
    "CurricularFaceHead",
    "MagFaceHead",
    "PartialFC",
    "SubCenterArcFaceHead",
    "find_outliers",
    "CombinedMarginHead",
    "CosFaceHead",
    "Head",
    "HeadOutput",
    "LSoftmaxHead",
    "MarginHead",
    "NormSoftmaxHead",
    "SoftmaxHead",
    "SphereFaceHead",
    "build_head",
    "check_head_options",
]
