"""Declared hyperparameters: frozen dataclasses that forms, flags and runs are generated from.

A config field declares its bounds and help text in ``metadata`` via :func:`param`; the same
declaration validates values, draws the UI form and parses ``--param name=value`` on the CLI.
Runs store :func:`config_to_dict` output and rebuild with :func:`config_from_dict`.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

from recsys_core.errors import ConfigError

C = TypeVar("C")


def param(
    default: Any,
    help: str,  # noqa: A002 - mirrors argparse's name, read by forms and CLI
    *,
    low: float | None = None,
    high: float | None = None,
    choices: tuple | None = None,
    log: bool = False,
    search: tuple[float, float] | None = None,
) -> Any:
    """A config field with a default, a help text and optional bounds or choices.

    ``low``/``high`` are inclusive. ``log`` hints the UI that the value spans orders of
    magnitude (and makes a hyperparameter search sample it on a log scale: rates and
    regularisers). ``search`` is the default range ``(lo, hi)`` a study searches (narrower
    than the valid bounds: the region worth trying); fields without one are left at their
    value unless a study names them. Categorical fields are searchable over their ``choices``
    when ``search`` is ``()``.
    """
    if (
        search is not None
        and search != ()
        and (len(search) != 2 or search[0] >= search[1] or (log and search[0] <= 0))
    ):
        raise ValueError(f"param {help!r}: search must be (lo, hi) with lo < hi (> 0 when log)")
    meta = {"help": help, "low": low, "high": high, "choices": choices, "log": log}
    meta["search"] = search
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class FieldSpec:
    """What a form or a CLI flag needs to know about one config field."""

    name: str
    type: type
    default: Any
    help: str
    low: float | None
    high: float | None
    choices: tuple | None
    log: bool
    search: tuple | None = None


def _resolved_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _base_type(annotation: Any) -> type:
    origin = typing.get_origin(annotation)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _base_type(args[0])
    if origin in (tuple, list):
        return tuple
    return annotation if isinstance(annotation, type) else str


def describe(cls: type) -> list[FieldSpec]:
    """The fields of config dataclass ``cls`` with their declared metadata."""
    hints = _resolved_types(cls)
    specs = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        specs.append(
            FieldSpec(
                name=f.name,
                type=_base_type(hints[f.name]),
                default=f.default,
                help=meta.get("help", ""),
                low=meta.get("low"),
                high=meta.get("high"),
                choices=meta.get("choices"),
                log=meta.get("log", False),
                search=meta.get("search"),
            )
        )
    return specs


def validate(config: Any) -> None:
    """Check every field of ``config`` against its declared bounds; raise ConfigError naming it.

    Called from each config's ``__post_init__`` so an invalid config cannot exist.
    """
    name = type(config).__name__
    for spec in describe(type(config)):
        value = getattr(config, spec.name)
        if spec.choices is not None and value not in spec.choices:
            raise ConfigError(
                f"{name}.{spec.name}: {value!r} is not allowed; choose one of {list(spec.choices)}"
            )
        if spec.type in (int, float) and not isinstance(value, bool):
            if not isinstance(value, (int, float)):
                raise ConfigError(f"{name}.{spec.name}: expected a number, got {value!r}")
            if value != value:  # NaN
                raise ConfigError(f"{name}.{spec.name}: NaN is not a valid value")
            if spec.low is not None and value < spec.low:
                raise ConfigError(f"{name}.{spec.name}: {value} is below the minimum {spec.low}")
            if spec.high is not None and value > spec.high:
                raise ConfigError(f"{name}.{spec.name}: {value} is above the maximum {spec.high}")


def coerce(spec: FieldSpec, raw: Any, owner: str = "") -> Any:
    """Convert ``raw`` (often a string from a CLI flag or a form) to the field's type."""
    label = f"{owner}.{spec.name}" if owner else spec.name
    try:
        if spec.type is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if spec.type is int:
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError(raw)
            return int(float(raw)) if isinstance(raw, str) and "e" in raw.lower() else int(raw)
        if spec.type is float:
            return float(raw)
        if spec.type is tuple:
            if isinstance(raw, str):
                raw = [p for p in raw.replace(";", ",").split(",") if p.strip()]
            default_items = spec.default if isinstance(spec.default, tuple) else ()
            item_type = type(default_items[0]) if default_items else str
            return tuple(item_type(x) for x in raw)
        return str(raw) if raw is not None else None
    except (TypeError, ValueError):
        kind = getattr(spec.type, "__name__", str(spec.type))
        raise ConfigError(f"{label}: expected {kind}, got {raw!r}") from None


def config_from_dict(cls: type[C], values: dict[str, Any] | None) -> C:
    """Build ``cls`` from a (possibly partial) dict; unknown keys are an error, not ignored."""
    values = dict(values or {})
    specs = {s.name: s for s in describe(cls)}
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown parameter(s) {unknown}; known: {sorted(specs)}")
    kwargs = {k: coerce(specs[k], v, cls.__name__) for k, v in values.items()}
    return cls(**kwargs)


def config_to_dict(config: Any) -> dict[str, Any]:
    """JSON-ready dict of a config (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def parse_params(cls: type[C], pairs: list[str] | None) -> C:
    """Parse ``["lambda=500", "k=20"]`` into a config of type ``cls``."""
    values: dict[str, str] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ConfigError(f"parameter {pair!r}: expected NAME=VALUE, e.g. l2=500")
        key, value = pair.split("=", 1)
        values[key.strip()] = value.strip()
    return config_from_dict(cls, values)


__all__ = [
    "FieldSpec",
    "config_from_dict",
    "config_to_dict",
    "coerce",
    "describe",
    "param",
    "parse_params",
    "validate",
]
