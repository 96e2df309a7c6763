"""Typed configuration: dataclass schemas, YAML loading, dotted overrides, resolved dumps.

A recipe is a YAML file whose keys mirror the dataclasses below. Every key, type, range and choice
is checked when the config is loaded, and an error names the key: a typo or an impossible value
never silently trains the default. The ``model`` and ``head`` sections are *open*: besides ``name``
they take the options of the chosen backbone or head, checked against its constructor's signature
(:func:`check_options`), so a new head is one file and no edit here.

    cfg = load_config("configs/demo.yaml", ["head.margin=0.4", "optim.lr=5e-2"])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml

from .errors import ConfigError
from .schema import apply_override, bounded, check_options, from_dict, merge, parse_yaml, to_dict

__all__ = [
    "Config",
    "ConfigError",
    "apply_override",
    "check_options",
    "dump_config",
    "from_dict",
    "load_config",
    "to_dict",
]


@dataclass
class ModelConfig:
    """The backbone: ``name`` plus that backbone's own options (iResNet: ``dropout``; MobileFaceNet:
    ``width``, ``blocks``), checked against its factory in :mod:`facelearn.models`."""

    OPEN: ClassVar[bool] = True
    name: str = "mobilefacenet"  # iresnet18/34/50/100/200, mobilefacenet, mobilefacenet_r
    embedding_size: int = bounded(512, ge=1)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class HeadConfig:
    """Margin head: ``name`` plus that head's own options (``scale``, ``margin``, …), checked against
    its constructor; an option left out or null keeps the head's default."""

    OPEN: ClassVar[bool] = True
    name: str = "arcface"  # see facelearn.heads.HEADS
    partial_fc: bool = False  # shard the class centres across processes (and sample them, sample_rate < 1)
    sample_rate: float = bounded(1.0, gt=0.0, le=1.0)  # Partial FC: fraction of class centres per step
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class DegradeConfig:
    """Degradations that turn an easy face into a hard one (each applied with its probability)."""

    downsample_prob: float = bounded(0.0, ge=0.0, le=1.0)
    downsample_sizes: list[int] = bounded(factory=lambda: [16, 24, 32], ge=2)
    blur_prob: float = bounded(0.0, ge=0.0, le=1.0)
    blur_sigma: list[float] = bounded(factory=lambda: [1.0, 3.0], gt=0.0)
    occlusion_prob: float = bounded(0.0, ge=0.0, le=1.0)
    occlusion_fraction: list[float] = bounded(factory=lambda: [0.15, 0.35], ge=0.0, le=1.0)
    noise_prob: float = bounded(0.0, ge=0.0, le=1.0)
    noise_std: list[float] = bounded(factory=lambda: [5.0, 20.0], ge=0.0)
    grayscale_prob: float = bounded(0.0, ge=0.0, le=1.0)


@dataclass
class DataConfig:
    kind: Literal["synthetic", "folder", "recordio"] = "synthetic"
    root: str | None = None  # folder / recordio: dataset directory
    num_classes: int | None = bounded(None, ge=2)  # head size; empty: counted from the data
    num_identities: int = bounded(400, ge=2)  # synthetic only
    images_per_identity: int = bounded(24, ge=1)  # synthetic only
    image_size: int = bounded(112, ge=16)
    flip: bool = True
    degrade: DegradeConfig = field(default_factory=DegradeConfig)
    strict: bool = False  # True: an unreadable image stops training instead of being skipped
    num_workers: int = bounded(1, ge=0)
    exclude: str | None = None  # folder data: file of image paths (relative to root) to leave out
    unlabelled: str | None = None  # folder data, train.task=distill: faces without labels, for the teacher's term only
    sampler: Literal["random", "identity"] = "random"  # identity: P identities × samples_per_identity a batch
    samples_per_identity: int = bounded(4, ge=2)  # K of the identity sampler (triplet, pair-wise Circle Loss)


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
    pairs: int = bounded(32, ge=1)  # b: per group and step, b singles of distinct identities and b positive pairs
    positive_threshold: float = bounded(0.0, ge=-1.0, le=1.0)
    mining: Literal["paper", "reference"] = "paper"  # paper: hardest other sample; reference: TFace's rule
    histogram: Literal["reference", "paper"] = "reference"  # reference: 1000 nodes on [0, 0.999]; paper: [-1, 1]
    bins: int | None = bounded(None, ge=2)  # paper preset only (default 101)
    sigma: float = bounded(0.1, gt=0.0)  # Gaussian kernel width: gamma = 1 / (2 sigma^2)
    pos_weight: float = bounded(0.1, ge=0.0)  # lambda 1
    neg_weight: float = bounded(0.02, ge=0.0)  # lambda 2
    order_weight: float = bounded(0.5, ge=0.0)  # lambda 3
    detach_teacher: bool = False  # True: no gradient through the teacher histograms (the reference lets it flow)


@dataclass
class DistillConfig:
    """Teacher-student distillation (``train.task: distill``); see :mod:`facelearn.train.distillation`."""

    teacher: str | None = None  # the teacher's checkpoint (facelearn, or a plain state_dict with teacher_model)
    teacher_model: str | None = None  # architecture of a plain state_dict teacher
    teacher_embedding_size: int = bounded(512, ge=1)  # of a plain state_dict teacher
    teacher_embeddings: str | None = None  # a black-box teacher: the .npz of facelearn teacher-embed (folder data)
    center_teacher: bool = False  # teacher_embeddings: subtract their mean over the training images (see README)
    method: Literal["angular", "l2", "hinton", "none"] = "angular"  # none: self-taught
    p: Literal[1, 2] = 1  # angular: (1 - cos)^p
    final_weight: float = bounded(1.0, ge=0.0)  # lambda_n, on the final embedding
    head_weight: float = bounded(1.0, ge=0.0)  # the student's margin-head term; 0: the teacher's term alone
    stages: list[int] = bounded(factory=list, ge=1)  # angular: also distil these stages (1-based) via adapters
    l2_weight: float = bounded(0.001, ge=0.0)
    temperature: float = bounded(4.0, gt=0.0)  # hinton
    hinton_weight: float = bounded(1.0, ge=0.0)


@dataclass
class OptimConfig:
    name: Literal["sgd", "adamw"] = "sgd"
    lr: float = bounded(0.1, gt=0.0)
    momentum: float = bounded(0.9, ge=0.0, lt=1.0)
    weight_decay: float = bounded(5e-4, ge=0.0)
    decay_norm_and_bias: bool = False  # False: no weight decay on BatchNorm/PReLU weights and biases
    nesterov: bool = False


@dataclass
class ScheduleConfig:
    warmup_steps: int = bounded(100, ge=0)
    decay: Literal["cosine", "poly", "step", "constant"] = "cosine"
    power: float = bounded(1.0, gt=0.0)  # poly
    milestones: list[float] = bounded(factory=lambda: [0.5, 0.75], gt=0.0, lt=1.0)  # step, as run fractions
    gamma: float = bounded(0.1, gt=0.0, le=1.0)  # step
    min_lr_ratio: float = bounded(0.0, ge=0.0, le=1.0)


@dataclass
class EvalSetConfig:
    name: str = "synthetic_unseen"
    kind: Literal["synthetic", "bin", "pairs"] = "synthetic"
    path: str | None = None  # bin: the .bin file; pairs: pairs.txt
    root: str | None = None  # pairs: image root
    num_pairs: int = bounded(2000, ge=2)  # synthetic only
    hard: bool = False  # degrade the images of every pair (see hard_members and degrade)
    hard_members: Literal["both", "second"] = "both"  # second: easy-hard pairs (the second image degraded)
    degrade: DegradeConfig | None = None  # the degradation of hard images (empty: the fixed HARD_DEGRADATION)
    folds: int = bounded(10, ge=2)  # k-fold protocol: thresholds are chosen on the others, accuracy per fold
    stratify: bool = False  # false: contiguous folds (LFW's); true: each fold gets its share of each kind


@dataclass
class EvalConfig:
    every: int = bounded(0, ge=0)  # steps between verification runs during training (0: only at the end)
    batch_size: int = bounded(128, ge=1)
    flip: bool = True
    sets: list[EvalSetConfig] = field(
        default_factory=lambda: [EvalSetConfig(), EvalSetConfig(name="synthetic_hard", hard=True)]
    )


@dataclass
class TrainConfig:
    steps: int = bounded(1200, ge=0)
    batch_size: int = bounded(64, ge=1)
    grad_accum: int = bounded(1, ge=1)
    sync_bn: bool = False  # under torchrun on CUDA: batch-norm statistics over the global batch
    clip_grad_norm: float = bounded(5.0, ge=0.0)  # 0 disables clipping
    amp: Literal["auto", "bf16", "fp16", "off"] = "auto"  # auto: fp16 on CUDA, bf16 on CPUs with native bf16
    channels_last: bool = True
    compile: bool | Literal["auto"] = "auto"  # torch.compile the backbone; auto: runs of >= 2000 steps
    device: str = "auto"  # auto, cpu, cuda, cuda:1, ...
    seed: int = bounded(0, ge=0)
    threads: int = bounded(0, ge=0)  # torch intra-op threads (0: torch's default)
    log_every: int = bounded(20, ge=1)
    checkpoint_every: int = bounded(200, ge=1)
    keep_last: int = bounded(2, ge=1)
    output_dir: str = "runs/demo"
    # true: continue from the newest checkpoint in output_dir, refusing a config that changes the run;
    # force: continue and apply the changed config (recorded in train.log); false: start over
    resume: bool | Literal["force"] = True
    init_backbone: str | None = None  # fine-tune: backbone weights (facelearn or arcface_torch)
    init_head: bool = False  # fine-tune: also take the head from init_backbone (a facelearn checkpoint)
    task: str = "classification"  # see facelearn.train.tasks.TASKS: classification, ddl, distill


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


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults ← YAML recipe ← dotted overrides, validated against the schema."""
    data = to_dict(Config())
    if path is not None:
        recipe = parse_yaml(Path(path).read_text(), str(path)) or {}
        merge(data, recipe, "", Config)
    for override in overrides or []:
        apply_override(data, override)
    return from_dict(Config, data)


def dump_config(config: Config, path: str | Path) -> None:
    from .io import write_text_atomic

    write_text_atomic(path, yaml.safe_dump(to_dict(config), sort_keys=False))
