"""Data-balance options: negative sampling, loss reweighting and resampling.

One frozen ``BalanceConfig`` travels with every run. Each model declares in
``Recommender.honours_balance`` which of its fields it honours; a non-default value for a field
the model does not honour is rejected by :func:`check_honoured` (never silently ignored).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from recsys_core.config import param, validate
from recsys_core.errors import ConfigError

NEG_SAMPLERS = ("uniform", "popularity", "in_batch", "hard")
RESAMPLERS = ("none", "upsample_tail", "downsample_head")


@dataclass(frozen=True)
class BalanceConfig:
    """Balance options; the defaults change nothing (uniform negatives, no reweighting)."""

    # negative sampling (pairwise / sampled-softmax models)
    neg_sampler: str = param("uniform", "how negatives are drawn", choices=NEG_SAMPLERS)
    neg_alpha: float = param(
        0.0, "popularity exponent of negative sampling (0 uniform, 1 proportional)", low=0.0, high=2.0
    )
    n_negatives: int = param(1, "negatives per positive", low=1, high=1000)
    hard_pool: int = param(
        20, "hard negatives: candidates scored per positive, the highest-scored kept", low=2, high=1000
    )
    # loss reweighting
    ips_beta: float = param(
        0.0, "inverse-propensity weight popularity^-beta on positives (0 = off)", low=0.0, high=2.0
    )
    pos_weight: float = param(1.0, "class weight of positives vs negatives", low=0.01, high=1000.0)
    focal_gamma: float = param(0.0, "focal loss gamma (0 = plain loss)", low=0.0, high=10.0)
    # resampling of the training interactions
    resample: str = param("none", "resampling of training interactions", choices=RESAMPLERS)
    resample_factor: float = param(
        2.0, "up-sampling factor for tail items / down-sampling divisor for head items",
        low=1.0, high=100.0,
    )
    head_share: float = param(
        0.2, "share of items (most popular first) counted as head",
        low=0.0, high=1.0,
    )
    user_cap: int = param(0, "keep at most this many interactions per user (0 = no cap)", low=0)
    # closed-form / neighbourhood analogues
    pop_norm: float = param(
        0.0, "divide item columns by popularity^x (EASE, ItemKNN, RP3beta analogue)", low=0.0, high=2.0
    )
    # explicit ratings as classes
    positive_threshold: float = param(
        0.0, "ratings at or above this are positives, below are explicit negatives (0 = all)", low=0.0
    )

    def __post_init__(self) -> None:
        validate(self)

    def changed(self) -> set[str]:
        """Names of the fields set away from their defaults."""
        return {f.name for f in fields(self) if getattr(self, f.name) != f.default}


#: Fields that only qualify another field; they count as honoured when their parent is.
DEPENDENT = {
    "neg_alpha": "neg_sampler",
    "hard_pool": "neg_sampler",
    "resample_factor": "resample",
    "head_share": "resample",
}


def check_honoured(model_name: str, honoured: frozenset[str], balance: BalanceConfig) -> None:
    """Raise ConfigError naming the model and option for any changed option it ignores."""
    ignored = sorted(
        name
        for name in balance.changed()
        if name not in honoured and DEPENDENT.get(name) not in honoured
    )
    if ignored:
        raise ConfigError(
            f"model {model_name!r} does not honour balance option(s) {ignored}; "
            f"it honours {sorted(honoured) or 'none'}. Reset those options or pick another model."
        )
