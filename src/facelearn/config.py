"""Typed configuration: dataclass schemas, YAML loading, dotted overrides, resolved dumps.

A recipe is a YAML file whose keys mirror the dataclasses below. Every key, type, range and choice
is checked when the config is loaded, and an error names the key: a typo or an impossible value
never silently trains the default. The ``model`` and ``head`` sections are *open*: besides ``name``
they take the options of the chosen backbone or head, checked against its constructor's signature
(:func:`check_options`), so a new head is one file and no edit here.

    cfg = load_config("configs/demo.yaml", ["head.margin=0.4", "optim.lr=5e-2"])
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml

from .errors import ConfigError

__all__ = ["Config", "ConfigError", "check_options", "dump_config", "from_dict", "load_config", "to_dict"]


def bounded(default: Any = None, *, factory=None, ge=None, gt=None, le=None, lt=None) -> Any:
    """A field whose value (or each element of its list) must lie in the given range."""
    metadata = {k: v for k, v in {"ge": ge, "gt": gt, "le": le, "lt": lt}.items() if v is not None}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


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
    method: Literal["angular", "l2", "hinton", "none"] = "angular"  # none: self-taught
    p: Literal[1, 2] = 1  # angular: (1 - cos)^p
    final_weight: float = bounded(1.0, ge=0.0)  # lambda_n, on the final embedding
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
    folds: int = bounded(10, ge=2)  # contiguous folds: thresholds are chosen on the others, accuracy per fold


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


def from_dict(cls: type, data: Any, where: str = "") -> Any:
    """Build dataclass ``cls`` from plain ``data``, checking every key, type, range and choice.

    In an open section (``OPEN``) the keys that are not fields become ``options`` (null: dropped,
    i.e. the default); :func:`check_options` checks them against the chosen factory."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    is_open = getattr(cls, "OPEN", False)
    unknown = [key for key in data if key not in fields or (is_open and key == "options")]
    if unknown and not is_open:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise ConfigError(f"unknown config key {key!r}; valid keys here: {', '.join(fields)}")
    values = {}
    for key, value in data.items():
        if key in unknown:
            continue
        name = f"{where}.{key}" if where else key
        values[key] = _coerce(hints[key], value, name)
        _check_bounds(values[key], fields[key].metadata, name)
    if is_open:
        options = dict(data.get("options") or {}) if isinstance(data.get("options"), dict) else {}
        options.update({key: data[key] for key in unknown if key != "options"})
        values["options"] = {key: value for key, value in options.items() if value is not None}
    return cls(**values)


_BOUNDS = {
    "ge": (">=", lambda v, b: v >= b),
    "gt": (">", lambda v, b: v > b),
    "le": ("<=", lambda v, b: v <= b),
    "lt": ("<", lambda v, b: v < b),
}


def _check_bounds(value: Any, metadata: Any, where: str) -> None:
    if value is None or not metadata:
        return
    for item in value if isinstance(value, list) else [value]:
        for key, bound in metadata.items():
            symbol, holds = _BOUNDS[key]
            if not holds(item, bound):
                raise ConfigError(f"{where} must be {symbol} {bound}, got {item!r}")


def _coerce(kind: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(kind)
    if kind is Any or kind is inspect.Parameter.empty:
        return value
    if origin is Literal:
        choices = typing.get_args(kind)
        if isinstance(value, bool) and isinstance(choices[0], str):
            value = "on" if value else "off"  # YAML 1.1 reads a bare off/on as a boolean
        if value not in choices or isinstance(value, bool) != isinstance(choices[0], bool):
            raise ConfigError(f"{where}: {value!r} is not one of: {', '.join(str(c) for c in choices)}")
        return value
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        errors: list[str] = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, where)
            except ConfigError as error:
                errors.append(str(error).removeprefix(f"{where}: "))
        raise ConfigError(f"{where}: " + "; or ".join(errors))
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item_kind = typing.get_args(kind)[0] if typing.get_args(kind) else Any
        items = [_coerce(item_kind, item, f"{where}.{i}") for i, item in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict or kind is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return value
    if dataclasses.is_dataclass(kind):
        return value if isinstance(value, kind) else from_dict(kind, value, where)
    if kind is float:
        return _float(value, where)
    if kind is str and isinstance(value, bool):
        return "on" if value else "off"  # YAML 1.1 reads a bare off/on as a boolean
    if kind is bool and not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if kind is int and isinstance(value, bool):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)  # 1e3 for a step count
    if isinstance(kind, type) and not isinstance(value, kind):
        raise ConfigError(f"{where}: expected {kind.__name__}, got {value!r}")
    return value


def _float(value: Any, where: str) -> float:
    """Every finite float Python accepts: 0.1, 1e10, 5E-4, "1_000.5"."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected float, got {value!r}") from None
    if not math.isfinite(number):
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    return number


def check_options(factory: Any, options: dict, where: str, name: str, exclude: tuple = (), strict: bool = True) -> dict:
    """``options`` checked against ``factory``'s keyword parameters (minus ``exclude``) and coerced
    to their annotated types; an option it does not take is an error listing those it does take
    (``strict=False``, for configs saved by older versions: dropped)."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    parameters = [
        p
        for p in inspect.signature(target).parameters.values()
        if p.name not in ("self", *exclude) and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    accepted = {p.name: p for p in parameters}
    wrong = sorted(set(options) - set(accepted))
    if wrong and strict:
        takes = ", ".join(accepted) or "no options"
        raise ConfigError(f"{where}.{wrong[0]} is not an option of {where} {name!r}; it takes: {takes}")
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # an annotation that cannot be resolved: take the value as written
        hints = {}
    return {
        key: _coerce(hints.get(key, Any), value, f"{where}.{key}") for key, value in options.items() if key in accepted
    }


class _Loader(yaml.SafeLoader):
    """YAML with every float Python writes: PyYAML's YAML 1.1 rule reads 1e10 and 5e-4 as strings."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def parse_yaml(text: str, where: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        detail = " ".join(str(error).split())
        raise ConfigError(f"{where} is not valid YAML: {detail}") from None


def apply_override(data: dict, override: str) -> None:
    """Apply ``a.b.c=value`` (value parsed as YAML) to a nested dict in place."""
    if "=" not in override:
        raise ConfigError(f"override {override!r} must look like key.subkey=value")
    dotted, raw = override.split("=", 1)
    keys = dotted.strip().split(".")
    node: Any = data
    value = parse_yaml(raw, f"the value of {dotted}") if raw.strip() else None
    for depth, key in enumerate(keys):
        here = ".".join(keys[: depth + 1])
        last = depth == len(keys) - 1
        if isinstance(node, list):
            if not key.lstrip("-").isdigit():
                raise ConfigError(f"{here}: {'.'.join(keys[:depth])} is a list; index it with a number")
            index = int(key)
            if not -len(node) <= index < len(node):
                raise ConfigError(
                    f"{here}: {'.'.join(keys[:depth])} has {len(node)} entries (0 to {len(node) - 1}); "
                    f"to change the list set it whole, e.g. {'.'.join(keys[:depth])}=[...]"
                )
            if last:
                node[index] = value
            elif node[index] is None:
                node[index] = {}
            node = node[index]
        elif isinstance(node, dict):
            if last:
                node[key] = value
            elif node.get(key) is None:
                node[key] = {}  # an empty optional section (eval.sets.0.degrade) takes its defaults
            node = node[key]
        else:
            raise ConfigError(f"{here}: {'.'.join(keys[:depth])} is a value, not a section")


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults ← YAML recipe ← dotted overrides, validated against the schema."""
    data = to_dict(Config())
    if path is not None:
        recipe = parse_yaml(Path(path).read_text(), str(path)) or {}
        _merge(data, recipe, "", Config)
    for override in overrides or []:
        apply_override(data, override)
    return from_dict(Config, data)


def _merge(base: dict, update: dict, where: str, schema: type | None) -> None:
    if not isinstance(update, dict):
        raise ConfigError(f"{where or 'recipe'}: expected a mapping, got {update!r}")
    is_open = schema is not None and getattr(schema, "OPEN", False)
    hints = typing.get_type_hints(schema) if schema is not None and dataclasses.is_dataclass(schema) else {}
    for key, value in update.items():
        name = f"{where}.{key}" if where else key
        if key not in base and not is_open:
            raise ConfigError(f"unknown config key {name!r}; valid keys here: {', '.join(base)}")
        inner = hints.get(key)
        if isinstance(base.get(key), dict) and isinstance(value, dict):
            _merge(base[key], value, name, inner if dataclasses.is_dataclass(inner) else None)
        else:
            base[key] = value


def to_dict(config: Any) -> Any:
    """Plain data for YAML and checkpoints; an open section's options sit beside its fields."""
    if dataclasses.is_dataclass(config):
        result = {}
        for f in dataclasses.fields(config):
            value = to_dict(getattr(config, f.name))
            if f.name == "options" and getattr(config, "OPEN", False):
                result.update(value)
            else:
                result[f.name] = value
        return result
    if isinstance(config, (list, tuple)):
        return [to_dict(item) for item in config]
    if isinstance(config, dict):
        return {key: to_dict(value) for key, value in config.items()}
    return config


def dump_config(config: Config, path: str | Path) -> None:
    from .io import write_text_atomic

    write_text_atomic(path, yaml.safe_dump(to_dict(config), sort_keys=False))
