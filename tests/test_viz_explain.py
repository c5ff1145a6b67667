"""Figures of the Explain page (recsys_core.viz.explain)."""

from __future__ import annotations

import numpy as np

from recsys_core.viz.explain import attention_heatmap


def _long_explanation(n: int = 50) -> dict:
    """An explanation of a 50-item history: item 7 has the largest attribution, item 45 the
    most attention; the first 10 items are outside the attention window (None)."""
    rng = np.random.default_rng(0)
    attribution = rng.normal(0, 0.01, n)
    attribution[min(7, n - 1)] = 0.9
    attention = rng.uniform(0, 0.01, n)
    attention[min(45, n - 1)] = 0.5
    features = [
        {
            "name": f"A Rather Long Film Title Number {i} (1999)",
            "kind": "history",
            "items": [100 + i],
            "item_ids": [str(100 + i)],
            "attribution": float(attribution[i]),
        }
        for i in range(n)
    ]
    return {
        "model": "sasrec",
        "features": features,
        "history": [100 + i for i in range(n)],
        "attention": [None] * 10 + [float(a) for a in attention[10:]],
        "attention_spearman": 0.1,
    }


def test_attention_heatmap_shows_the_strongest_items_with_readable_labels():
    fig = attention_heatmap(_long_explanation(), max_items=15)
    heat = fig.data[0]
    labels = list(heat.y)
    assert len(labels) == 15 and np.asarray(heat.z).shape == (15, 2)
    # the strongest item by each measure is shown, by its full title, in time order
    assert "A Rather Long Film Title Number 7 (1999)" in labels
    assert "A Rather Long Film Title Number 45 (1999)" in labels
    numbers = [int(label.split()[-2]) for label in labels]
    assert numbers == sorted(numbers)
    assert "top 15 of 50" in fig.layout.title.text
    assert fig.layout.height >= 26 * 15  # one readable row per item


def test_attention_heatmap_keeps_short_histories_whole():
    exp = _long_explanation(6)
    exp["attention"] = [0.1, 0.2, 0.3, 0.1, 0.2, 0.1]
    fig = attention_heatmap(exp)
    assert len(fig.data[0].y) == 6 and "top" not in fig.layout.title.text
    assert attention_heatmap({**exp, "attention": None}) is None
