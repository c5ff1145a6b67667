"""Figures leaving the app: offline HTML pieces (plotly.js inlined once) and PNG files.

Nothing here fetches from outside the machine. HTML exports inline plotly.js (about 4.6 MB)
instead of pointing at a CDN, so a downloaded file opens from disk with no network. PNG export
uses kaleido (an optional dependency, ``requirements-optional.txt``), which drives a local
Chromium: Debian's ``chromium`` is used through ``$BROWSER_PATH`` (kaleido never downloads a
browser of its own here).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import plotly.graph_objects as go

#: The plotly config of exported figures: no logo linking to plotly.com, no cloud export.
EXPORT_CONFIG = {"displaylogo": False, "responsive": True}
KALEIDO_HINT = (
    "PNG export needs the optional kaleido package and a Chromium: "
    "`pip install -r requirements-optional.txt` and `apt-get install chromium`"
)


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """The plotly.js bundle shipped with the plotly package (no network)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def plotly_script() -> str:
    """A ``<script>`` element holding plotly.js, to include once per HTML file."""
    # "</script" cannot occur inside a script element; the bundle is escaped defensively.
    return "<script>" + plotly_js().replace("</script", "<\\/script") + "</script>"


def figure_div(fig: go.Figure, div_id: str) -> str:
    """The figure as a ``<div>`` plus its inline drawing script, without plotly.js itself."""
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", div_id):
        raise ValueError(f"figure id {div_id!r} must be letters, digits, '-' or '_'")
    return fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        include_mathjax=False,
        div_id=div_id,
        config=EXPORT_CONFIG,
    )


def standalone_html(fig: go.Figure) -> str:
    """One figure as a self-contained HTML page (plotly.js inlined, works offline)."""
    return fig.to_html(include_plotlyjs=True, include_mathjax=False, full_html=True,
                       config=EXPORT_CONFIG)  # fmt: skip


def chromium_path() -> str | None:
    """The Chromium kaleido should drive: ``$BROWSER_PATH``, else Debian's ``chromium``."""
    found = os.environ.get("BROWSER_PATH")
    if found:
        return found
    return shutil.which("chromium") or shutil.which("chromium-browser")


def png_unavailable() -> str | None:
    """None when PNG export works here, else the sentence saying what is missing."""
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return f"kaleido is not installed. {KALEIDO_HINT}"
    if chromium_path() is None:
        return f"no Chromium was found. {KALEIDO_HINT}"
    return None


def _use_local_chromium() -> None:
    path = chromium_path()
    if path:
        # choreographer (kaleido's browser driver) reads $BROWSER_PATH before any search.
        os.environ.setdefault("BROWSER_PATH", path)


#: Kaleido's options: plotly.js from the plotly package (its default), and no MathJax, which
#: kaleido would otherwise load from a CDN into its page (an outside request, slow offline).
KALEIDO_OPTIONS = {"mathjax": False}


def figure_png(fig: go.Figure, *, width: int = 1400, height: int = 900) -> bytes:
    """PNG bytes of one figure. RuntimeError naming what is missing when kaleido cannot run."""
    missing = png_unavailable()
    if missing:
        raise RuntimeError(missing)
    _use_local_chromium()
    import kaleido

    opts = {"format": "png", "width": width, "height": height, "scale": 1}
    return kaleido.calc_fig_sync(fig.to_dict(), opts=opts, kopts=dict(KALEIDO_OPTIONS))


def write_pngs(figures: Mapping[str, go.Figure], folder: Path) -> list[Path]:
    """Write ``<folder>/<name>.png`` for every figure (one browser session for all of them).

    Raises RuntimeError naming what is missing when kaleido or Chromium is absent.
    """
    missing = png_unavailable()
    if missing:
        raise RuntimeError(missing)
    _use_local_chromium()
    import kaleido

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    opts = {"format": "png", "width": 1200, "height": 700, "scale": 1}
    specs = [
        {"fig": fig.to_dict(), "path": folder / f"{safe_name(name)}.png", "opts": dict(opts)}
        for name, fig in figures.items()
    ]
    if specs:
        kaleido.write_fig_from_object_sync(specs, kopts=dict(KALEIDO_OPTIONS))
    return [spec["path"] for spec in specs]


def safe_name(name: str) -> str:
    """A file-name-safe form of ``name`` (letters, digits, ``.-_``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "figure"


__all__ = [
    "EXPORT_CONFIG",
    "KALEIDO_HINT",
    "KALEIDO_OPTIONS",
    "chromium_path",
    "figure_div",
    "figure_png",
    "plotly_js",
    "plotly_script",
    "png_unavailable",
    "safe_name",
    "standalone_html",
    "write_pngs",
]
