"""The model registry: stable string keys -> Recommender classes (explicit, no import magic).

To add a model: one module under ``recsys_core/models/``, one import below, one entry in
``_ALL``. The contract suite in ``tests/test_model_contract.py`` then covers it automatically.
"""

from __future__ import annotations

from recsys_core.errors import NotFoundError
from recsys_core.models.base import Recommender
from recsys_core.models.bpr import BPR
from recsys_core.models.content import ContentBased
from recsys_core.models.ease import EASE
from recsys_core.models.fusion import Fusion
from recsys_core.models.gru4rec import GRU4Rec
from recsys_core.models.ials import IALS
from recsys_core.models.itemknn import ItemKNN
from recsys_core.models.lightgcn import LightGCN
from recsys_core.models.multiinterest import MultiInterest
from recsys_core.models.multvae import MultVAE
from recsys_core.models.neumf import NeuMF
from recsys_core.models.popular import MostPopular, Random
from recsys_core.models.rp3beta import RP3beta
from recsys_core.models.sasrec import SASRec
from recsys_core.models.twotower import TwoTower

_ALL: tuple[type[Recommender], ...] = (
    Random,
    MostPopular,
    BPR,
    MultVAE,
    NeuMF,
    LightGCN,
    ItemKNN,
    EASE,
    RP3beta,
    IALS,
    ContentBased,
    SASRec,
    GRU4Rec,
    TwoTower,
    MultiInterest,
    Fusion,
)

MODELS: dict[str, type[Recommender]] = {cls.name: cls for cls in _ALL}


def get_model(key: str) -> type[Recommender]:
    """The model class registered under ``key``; NotFoundError lists the known keys."""
    try:
        return MODELS[key]
    except KeyError:
        raise NotFoundError(f"unknown model {key!r}; known models: {sorted(MODELS)}") from None


__all__ = ["MODELS", "Recommender", "get_model"]
