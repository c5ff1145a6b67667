"""Recsys Explorer's core: data, splits, models, metrics, runs, explanations, maps.

Importable without streamlit; the app in ``app.py`` and ``pages/`` is one view over it.
"""

__version__ = "0.1.0"
