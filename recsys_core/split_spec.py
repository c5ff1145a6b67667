"""Which evaluation protocol cuts a dataset, and with which options (no data involved).

Kept free of numpy, pandas and torch so that forms and the command line can describe a split
without loading them; :mod:`recsys_core.split` applies it.
"""

from __future__ import annotations

from dataclasses import dataclass

from recsys_core.config import config_from_dict, config_to_dict, param, validate
from recsys_core.errors import ConfigError

PROTOCOLS = ("random", "leave_last", "temporal", "users", "predefined")
#: The SplitSpec fields each protocol reads (forms show only these; the rest keep defaults).
PROTOCOL_FIELDS: dict[str, tuple[str, ...]] = {
    "random": ("test_ratio", "valid_ratio", "seed"),
    "leave_last": ("k", "valid_k"),
    "temporal": ("test_ratio", "valid_ratio", "cutoff"),
    "users": ("test_ratio", "target_ratio", "valid_ratio", "seed"),
    "predefined": ("split_file",),
}


@dataclass(frozen=True)
class SplitSpec:
    """Which protocol and its options (JSON round-trip via config_to_dict / config_from_dict)."""

    protocol: str = param("random", "evaluation protocol", choices=PROTOCOLS)
    test_ratio: float = param(
        0.2,
        "random: share of each user's interactions held out; temporal: share of the time "
        "range's interactions after the cutoff; users: share of users held out",
        low=0.0,
        high=0.9,
    )
    valid_ratio: float = param(
        0.1,
        "share of each user's interactions (temporal: of all interactions, just before the "
        "test cutoff) carved from training for early stopping (0 = no validation part)",
        low=0.0,
        high=0.9,
    )
    k: int = param(1, "leave_last: the last k interactions of each user are the test", low=1)
    valid_k: int = param(
        1, "leave_last: the k interactions before the test ones are validation (0 = none)", low=0
    )
    target_ratio: float = param(
        0.2,
        "users: share of each held-out user's history to predict (rest is fold-in)",
        low=0.05,
        high=0.95,
    )
    cutoff: int = param(
        0, "temporal: cutoff as a unix timestamp (0 = from test_ratio as a time quantile)", low=0
    )
    split_file: str = param(
        "", "predefined: a file of user,item,part rows (empty = the dataset's split column)"
    )
    seed: int = param(0, "random seed of the split", low=0)

    def __post_init__(self) -> None:
        validate(self)
        if self.test_ratio + self.valid_ratio >= 1.0:
            raise ConfigError(
                f"SplitSpec.test_ratio {self.test_ratio} + valid_ratio {self.valid_ratio} leaves "
                "no training data; make their sum smaller than 1"
            )

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, values: dict | None) -> SplitSpec:
        return config_from_dict(cls, values)
