"""Search spaces of hyperparameter studies, drawn from the models' config declarations.

A field declared ``param(..., search=(lo, hi), log=...)`` is searched by default; the CLI's
``--space`` and the Tune page's table narrow, rescale, add or fix fields (:func:`parse_space`,
:func:`space_from_frame`). Also the one place that imports Optuna (:func:`import_optuna`), so a
missing optional dependency is reported the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recsys_core.config import FieldSpec, describe
from recsys_core.errors import ConfigError, RecsysError

INSTALL_HINT = "install the optional dependencies: pip install -r requirements-optional.txt"


def import_optuna() -> Any:
    """``import optuna`` (quietened) or a RecsysError saying how to install it."""
    try:
        import optuna
    except ImportError as error:
        raise RecsysError(f"studies need the `optuna` package ({error}); {INSTALL_HINT}") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def optuna_available() -> bool:
    try:
        import_optuna()
    except RecsysError:
        return False
    return True


# ----- search spaces ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Dimension:
    """One searched field: a numeric range (``log`` for rates and regularisers) or choices."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple | None = None

    def distribution(self) -> Any:
        optuna = import_optuna()
        d = optuna.distributions
        if self.choices is not None:
            return d.CategoricalDistribution(list(self.choices))
        if self.integer:
            return d.IntDistribution(int(self.low), int(self.high), log=self.log)
        return d.FloatDistribution(float(self.low), float(self.high), log=self.log)

    def grid(self, points: int = 3) -> list[Any]:
        """``points`` values spread over the range (geometrically when ``log``), or the choices."""
        if self.choices is not None:
            return list(self.choices)
        if self.log:
            values = np.geomspace(self.low, self.high, points)
        else:
            values = np.linspace(self.low, self.high, points)
        if self.integer:
            return sorted({int(round(v)) for v in values})
        return [float(v) for v in values]


def _dimension(spec: FieldSpec, low: Any = None, high: Any = None, log: bool | None = None):  # noqa: ANN202
    if spec.choices is not None:
        return Dimension(spec.name, choices=tuple(spec.choices))
    if spec.type not in (int, float) or spec.type is bool:
        raise ConfigError(
            f"search space: {spec.name} is not numeric or categorical; fix it instead"
        )
    lo, hi = (low, high) if low is not None else (spec.search or (spec.low, spec.high))
    if lo is None or hi is None:
        raise ConfigError(f"search space: {spec.name} has no declared range; give name=lo:hi")
    use_log = spec.log if log is None else log
    integer = spec.type is int
    lo, hi = (int(lo), int(hi)) if integer else (float(lo), float(hi))
    if not lo < hi:
        raise ConfigError(f"search space: {spec.name} needs lo < hi, got {lo}:{hi}")
    if use_log and lo <= 0:
        raise ConfigError(f"search space: {spec.name} on a log scale needs lo > 0, got {lo}")
    for value, bound, side in ((lo, spec.low, "minimum"), (hi, spec.high, "maximum")):
        if bound is not None and (value < bound if side == "minimum" else value > bound):
            raise ConfigError(
                f"search space: {spec.name} range {lo}:{hi} passes the field's {side} {bound}"
            )
    return Dimension(spec.name, lo, hi, log=bool(use_log), integer=integer)


def default_space(model: str) -> dict[str, Dimension]:
    """The fields the model declares a search range for (``param(search=...)``)."""
    from recsys_core.models import get_model

    return {
        s.name: _dimension(s) for s in describe(get_model(model).Config) if s.search is not None
    }


def parse_space(
    model: str, pairs: Sequence[str] = (), *, replace: bool = False
) -> tuple[dict[str, Dimension], dict[str, Any]]:
    """The model's default space changed by ``pairs``; returns ``(space, fixed)``.

    ``name=lo:hi`` narrows or adds a range, ``name=lo:hi:log`` / ``:lin`` sets the scale,
    ``name=a|b|c`` searches choices, ``name=value`` fixes the field (removed from the space).
    ``replace=True`` starts from an empty space instead of the declared one.
    """
    from recsys_core.config import coerce
    from recsys_core.models import get_model

    specs = {s.name: s for s in describe(get_model(model).Config)}
    space = {} if replace else default_space(model)
    fixed: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"search space {pair!r}: expected name=lo:hi[:log] or name=value")
        name, text = (p.strip() for p in pair.split("=", 1))
        if name not in specs:
            raise ConfigError(
                f"search space: {model} has no field {name!r}; known: {sorted(specs)}"
            )
        spec = specs[name]
        if "|" in text:
            choices = tuple(coerce(spec, c.strip(), model) for c in text.split("|"))
            space[name] = Dimension(name, choices=choices)
        elif ":" in text:
            parts = text.split(":")
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("log", "lin")):
                raise ConfigError(f"search space {pair!r}: expected name=lo:hi or name=lo:hi:log")
            log = None if len(parts) == 2 else parts[2] == "log"
            lo, hi = (coerce(spec, p, model) for p in parts[:2])
            space[name] = _dimension(spec, lo, hi, log)
        else:
            fixed[name] = coerce(spec, text, model)
            space.pop(name, None)
        if name in space:
            fixed.pop(name, None)
    if not space:
        raise ConfigError(
            f"search space: nothing to search for {model}; give ranges with --space name=lo:hi"
        )
    return space, fixed


def tunable_models() -> list[str]:
    """Registry keys of the models that declare at least one search range."""
    from recsys_core.models import MODELS

    return sorted(k for k, cls in MODELS.items() if any(s.search for s in describe(cls.Config)))


def space_frame(model: str) -> pd.DataFrame:
    """The model's numeric fields as rows a form can edit: ``field, search, low, high, log,
    default`` (``search`` True for the declared space); see :func:`space_from_frame`."""
    from recsys_core.models import get_model

    declared = default_space(model)
    rows = []
    for spec in describe(get_model(model).Config):
        if spec.type not in (int, float) or spec.type is bool or spec.choices is not None:
            continue
        dim = declared.get(spec.name)
        low, high = (dim.low, dim.high) if dim else (spec.search or (spec.low, spec.high))
        rows.append(
            {
                "field": spec.name,
                "search": dim is not None,
                "low": None if low is None else float(low),
                "high": None if high is None else float(high),
                "log": bool(dim.log if dim else spec.log),
                "default": float(spec.default),
                "help": spec.help,
            }
        )
    return pd.DataFrame(rows)


def space_from_frame(model: str, frame: pd.DataFrame) -> tuple[dict[str, Dimension], dict]:
    """``(space, fixed)`` from an edited :func:`space_frame`: searched rows become ranges (checked
    against the field's bounds), the rest keep their default."""
    pairs = []
    for row in frame.to_dict(orient="records"):
        if row["search"]:
            scale = "log" if row["log"] else "lin"
            low, high = _plain(row["low"]), _plain(row["high"])
            pairs.append(f"{row['field']}={low}:{high}:{scale}")
    if not pairs:
        raise ConfigError("search space: tick at least one field to search")
    return parse_space(model, pairs, replace=True)


def _plain(value: Any) -> str:
    """A table cell as text: the editor holds a column as floats, so an integer field's bound
    arrives as 8.0 and must read as 8."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


__all__ = [
    "INSTALL_HINT",
    "Dimension",
    "default_space",
    "import_optuna",
    "optuna_available",
    "parse_space",
    "space_frame",
    "space_from_frame",
    "tunable_models",
]
