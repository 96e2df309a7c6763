"""The machinery under :mod:`facelearn.config`: typed dataclasses from plain data, every key, type,
range and choice checked with an error that names the key; YAML with Python's floats; dotted
overrides; factory options checked against a signature. Nothing here knows the recipe's sections.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
import types
import typing
from dataclasses import field
from typing import Any, Literal

import yaml

from .errors import ConfigError


def bounded(default: Any = None, *, factory=None, ge=None, gt=None, le=None, lt=None) -> Any:
    """A field whose value (or each element of its list) must lie in the given range."""
    metadata = {k: v for k, v in {"ge": ge, "gt": gt, "le": le, "lt": lt}.items() if v is not None}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


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


def merge(base: dict, update: dict, where: str, schema: type | None) -> None:
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
            merge(base[key], value, name, inner if dataclasses.is_dataclass(inner) else None)
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
