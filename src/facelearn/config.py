"""Typed configuration: dataclass schemas, YAML loading, dotted overrides, resolved dumps.

A recipe is a YAML file whose keys mirror the dataclasses below. Unknown or misspelt keys are
errors that name the key and list the valid ones, so a typo never silently trains the default.

    cfg = load_config("configs/demo.yaml", ["head.margin=0.4", "optim.lr=0.05"])
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A recipe or an override does not fit the schema."""


@dataclass
class ModelConfig:
    name: str = "mobilefacenet"  # iresnet18/34/50/100/200, mobilefacenet
    embedding_size: int = 512
    dropout: float = 0.0  # iResNet only: dropout before the final fc
    width: int = 2  # MobileFaceNet only: channel multiplier (insightface "mbf" uses 2)
    blocks: list[int] = field(default_factory=lambda: [1, 4, 6, 2])  # MobileFaceNet only


@dataclass
class HeadConfig:
    """Margin head. ``None`` means "the head's own default"; a value the head cannot take is an
    error naming the options it does take."""

    name: str = "arcface"  # softmax, normsoftmax, sphereface, cosface, arcface, combined, magface, circle,
    # circle_pair, curricularface, adaface, subcenter_arcface, adacos, triplet
    scale: float | None = None
    margin: float | None = None
    m1: float | None = None  # combined margin cos(m1*theta + m2) - m3
    m2: float | None = None
    m3: float | None = None
    fallback: str | None = None  # ArcFace when theta + m > pi: thmm, easy_margin, cos, none
    gradient: str | None = None  # ArcFace/combined: exact or straight_through (insightface)
    lambda_base: float | None = None  # SphereFace lambda annealing
    lambda_gamma: float | None = None
    lambda_power: float | None = None
    lambda_min: float | None = None
    l_a: float | None = None  # MagFace magnitude range and margin range, regulariser weight
    u_a: float | None = None
    l_m: float | None = None
    u_m: float | None = None
    lambda_g: float | None = None
    gamma: float | None = None  # Circle Loss scale
    momentum: float | None = None  # CurricularFace EMA weight of the new batch
    h: float | None = None  # AdaFace
    t_alpha: float | None = None
    sub_centers: int | None = None  # Sub-center ArcFace K
    dynamic: bool | None = None  # AdaCos: re-estimate the scale every step
    partial_fc: bool = False  # shard the class centres across processes (and sample them, sample_rate < 1)
    sample_rate: float = 1.0  # Partial FC: fraction of class centres per step (positives always kept)


@dataclass
class DegradeConfig:
    """Degradations that turn an easy face into a hard one (each applied with its probability)."""

    downsample_prob: float = 0.0
    downsample_sizes: list[int] = field(default_factory=lambda: [16, 24, 32])
    blur_prob: float = 0.0
    blur_sigma: list[float] = field(default_factory=lambda: [1.0, 3.0])
    occlusion_prob: float = 0.0
    occlusion_fraction: list[float] = field(default_factory=lambda: [0.15, 0.35])
    noise_prob: float = 0.0
    noise_std: list[float] = field(default_factory=lambda: [5.0, 20.0])
    grayscale_prob: float = 0.0


@dataclass
class DataConfig:
    kind: str = "synthetic"  # synthetic, folder, recordio
    root: str | None = None  # folder / recordio: dataset directory
    num_classes: int | None = None  # head size; empty: counted from the data
    num_identities: int = 400  # synthetic only
    images_per_identity: int = 24  # synthetic only
    image_size: int = 112
    flip: bool = True
    degrade: DegradeConfig = field(default_factory=DegradeConfig)
    strict: bool = False  # True: an unreadable image stops training instead of being skipped
    num_workers: int = 1
    exclude: str | None = None  # folder data: file of image paths (relative to root) to leave out
    sampler: str = "random"  # random, or identity: P identities × samples_per_identity images a batch
    samples_per_identity: int = 4  # K of the identity sampler (triplet, pair-wise Circle Loss)


@dataclass
class DDLGroupConfig:
    """A student group of DDL: hard views made from the easy images by ``degrade``, or (``degrade``
    empty) the images that ``ddl.metadata`` assigns to a group of this ``name``."""

    name: str = "downsample_4x"
    degrade: DegradeConfig | None = field(
        default_factory=lambda: DegradeConfig(downsample_prob=1.0, downsample_sizes=[28])  # 112 px / 4
    )


@dataclass
class DDLConfig:
    """Distribution Distillation Loss (``train.task: ddl``); see :mod:`facelearn.losses.ddl`."""

    students: list[DDLGroupConfig] = field(default_factory=lambda: [DDLGroupConfig()])
    metadata: str | None = None  # CSV "path,group" (paths relative to data.root; the teacher group is "easy")
    pairs_list: str | None = None  # CSV "group,first,second" of positive pairs to draw from (default: on the fly)
    pairs: int = 32  # b: per group and step, b single images of distinct identities and b positive pairs
    positive_threshold: float = 0.0
    mining: str = "paper"  # paper (hardest other sample) or reference (TFace: later rows, floored at 0)
    histogram: str = "reference"  # reference (1000 nodes on [0, 0.999]) or paper (R nodes on [-1, 1])
    bins: int | None = None  # paper preset only (default 101)
    sigma: float = 0.1  # Gaussian kernel width: gamma = 1 / (2 sigma^2)
    pos_weight: float = 0.1  # lambda 1
    neg_weight: float = 0.02  # lambda 2
    order_weight: float = 0.5  # lambda 3
    detach_teacher: bool = False  # True: no gradient through the teacher histograms (the reference lets it flow)


@dataclass
class DistillConfig:
    """Teacher-student distillation (``train.task: distill``); see :mod:`facelearn.train.distillation`."""

    teacher: str | None = None  # the teacher's checkpoint (facelearn, or a plain state_dict with teacher_model)
    teacher_model: str | None = None  # architecture of a plain state_dict teacher
    teacher_embedding_size: int = 512  # of a plain state_dict teacher
    method: str = "angular"  # angular, l2, hinton, none (self-taught)
    p: int = 1  # angular: (1 - cos)^p
    final_weight: float = 1.0  # lambda_n, on the final embedding
    stages: list[int] = field(default_factory=list)  # angular: also distil these stages (1-based) via adapters
    l2_weight: float = 0.001
    temperature: float = 4.0  # hinton
    hinton_weight: float = 1.0


@dataclass
class OptimConfig:
    name: str = "sgd"  # sgd, adamw
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    decay_norm_and_bias: bool = False  # False: no weight decay on BatchNorm/PReLU weights and biases
    nesterov: bool = False


@dataclass
class ScheduleConfig:
    warmup_steps: int = 100
    decay: str = "cosine"  # cosine, poly, step, constant
    power: float = 1.0  # poly
    milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])  # step, as run fractions
    gamma: float = 0.1  # step
    min_lr_ratio: float = 0.0


@dataclass
class EvalSetConfig:
    name: str = "synthetic_unseen"
    kind: str = "synthetic"  # synthetic, bin, pairs
    path: str | None = None  # bin: the .bin file; pairs: pairs.txt
    root: str | None = None  # pairs: image root
    num_pairs: int = 2000  # synthetic only
    hard: bool = False  # degrade the images of every pair (see hard_members and degrade)
    hard_members: str = "both"  # both: hard-hard pairs; second: easy-hard pairs (the second image degraded)
    degrade: DegradeConfig | None = None  # the degradation of hard images (empty: the fixed HARD_DEGRADATION)
    folds: int = 10  # contiguous folds: thresholds are chosen on the others, accuracy reported per fold


@dataclass
class EvalConfig:
    every: int = 0  # steps between verification runs during training (0: only at the end)
    batch_size: int = 128
    flip: bool = True
    sets: list[EvalSetConfig] = field(
        default_factory=lambda: [EvalSetConfig(), EvalSetConfig(name="synthetic_hard", hard=True)]
    )


@dataclass
class TrainConfig:
    steps: int = 1200
    batch_size: int = 64
    grad_accum: int = 1
    sync_bn: bool = False  # under torchrun on CUDA: batch-norm statistics over the global batch
    clip_grad_norm: float = 5.0  # 0 disables clipping
    amp: str = "auto"  # auto (bf16 on CPU, fp16 on CUDA), bf16, fp16, off
    channels_last: bool = True
    device: str = "auto"  # auto, cpu, cuda, cuda:1, ...
    seed: int = 0
    threads: int = 0  # torch intra-op threads (0: torch's default)
    log_every: int = 20
    checkpoint_every: int = 200
    keep_last: int = 2
    output_dir: str = "runs/demo"
    resume: bool = True  # continue from the newest checkpoint in output_dir if there is one
    init_backbone: str | None = None  # fine-tune: backbone weights (facelearn or arcface_torch)
    init_head: bool = False  # fine-tune: also take the head from init_backbone (a facelearn checkpoint)
    task: str = "classification"  # classification, ddl (the ddl section) or distill (the distill section)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    ddl: DDLConfig = field(default_factory=DDLConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)


def from_dict(cls: type, data: Any, where: str = "") -> Any:
    """Build dataclass ``cls`` from plain ``data``, checking every key and type."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [key for key in data if key not in names]
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise ConfigError(f"unknown config key {key!r}; valid keys here: {', '.join(names)}")
    values = {key: _coerce(hints[key], value, f"{where}.{key}" if where else key) for key, value in data.items()}
    return cls(**values)


def _coerce(kind: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        last_error: ConfigError | None = None
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, where)
            except ConfigError as error:
                last_error = error
        raise last_error or ConfigError(f"{where}: invalid value {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item_kind,) = typing.get_args(kind)
        return [_coerce(item_kind, item, f"{where}.{i}") for i, item in enumerate(value)]
    if dataclasses.is_dataclass(kind):
        return value if isinstance(value, kind) else from_dict(kind, value, where)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is str and isinstance(value, bool):
        return "on" if value else "off"  # YAML 1.1 reads a bare off/on as a boolean
    if kind is bool and not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if kind in (int, float) and isinstance(value, bool):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if isinstance(kind, type) and not isinstance(value, kind):
        raise ConfigError(f"{where}: expected {kind.__name__}, got {value!r}")
    return value


def apply_override(data: dict, override: str) -> None:
    """Apply ``a.b.c=value`` (value parsed as YAML) to a nested dict in place."""
    if "=" not in override:
        raise ConfigError(f"override {override!r} must look like key.subkey=value")
    dotted, raw = override.split("=", 1)
    keys = dotted.strip().split(".")
    node: Any = data
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    last = keys[-1]
    value = yaml.safe_load(raw) if raw.strip() else None
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults ← YAML recipe ← dotted overrides, validated against the schema."""
    data = to_dict(Config())
    if path is not None:
        recipe = yaml.safe_load(Path(path).read_text()) or {}
        _merge(data, recipe, "")
    for override in overrides or []:
        apply_override(data, override)
    return from_dict(Config, data)


def _merge(base: dict, update: dict, where: str) -> None:
    if not isinstance(update, dict):
        raise ConfigError(f"{where or 'recipe'}: expected a mapping, got {update!r}")
    for key, value in update.items():
        if key not in base:
            name = f"{where}.{key}" if where else key
            raise ConfigError(f"unknown config key {name!r}; valid keys here: {', '.join(base)}")
        if isinstance(base[key], dict) and isinstance(value, dict):
            _merge(base[key], value, f"{where}.{key}" if where else key)
        else:
            base[key] = value


def to_dict(config: Any) -> dict:
    return dataclasses.asdict(config)


def dump_config(config: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
