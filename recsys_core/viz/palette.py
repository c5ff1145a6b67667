"""One colour per model, the same in every chart of every page.

A colour is looked up by the model's registry key, not by its position in a chart, so EASE is
the same colour on the Compare, Embeddings and Balance pages whichever runs are shown.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

#: Plotly's "Dark24"-like qualitative palette: 24 colours distinct enough side by side.
PALETTE: tuple[str, ...] = (
    "#2E91E5",
    "#E15F99",
    "#1CA71C",
    "#FB0D0D",
    "#DA16FF",
    "#222A2A",
    "#B68100",
    "#750D86",
    "#EB663B",
    "#511CFB",
    "#00A08B",
    "#FB00D1",
    "#FC0080",
    "#B2828D",
    "#6C7C32",
    "#778AAE",
    "#862A16",
    "#A777F1",
    "#620042",
    "#1616A7",
    "#DA60CA",
    "#6C4516",
    "#0D2A63",
    "#AF0038",
)


def _registry_order() -> list[str]:
    # The registry is append-only in practice, so a model keeps its colour as models are added.
    from recsys_core.models import MODELS

    return list(MODELS)


def model_color(key: str) -> str:
    """The colour of model ``key`` (a registry key such as ``"ease"``).

    Registered models take palette colours in registry order; an unknown key gets a colour from a
    stable hash (CRC32), so the answer never depends on what else is on the chart.
    """
    order = _registry_order()
    if key in order:
        return PALETTE[order.index(key) % len(PALETTE)]
    return PALETTE[zlib.crc32(key.encode("utf-8")) % len(PALETTE)]


def model_colors(keys: Iterable[str]) -> dict[str, str]:
    """``{key: colour}`` for each distinct key, for plotly's ``color_discrete_map``."""
    return {key: model_color(key) for key in dict.fromkeys(keys)}


__all__ = ["PALETTE", "model_color", "model_colors"]
