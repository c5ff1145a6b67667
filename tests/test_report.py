"""Self-contained reports (recsys_core.report): offline, plotly.js once, escaped, provenance."""

from __future__ import annotations

import re

import pytest
from conftest import HOSTILE_TITLE

from recsys_core.cli.main import main
from recsys_core.errors import ConfigError
from recsys_core.presentation import CardItem, WhyCard
from recsys_core.report import (
    cards_report,
    code_version,
    compare_report,
    run_report,
    split_text,
)
from recsys_core.viz.export import plotly_js, png_unavailable, write_pngs

#: A <script src=...> or <link href=...> (or any src/href attribute) pointing off the machine.
OUTSIDE = re.compile(
    r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""",
    re.IGNORECASE,
)


def _offline_checks(text: str) -> None:
    assert OUTSIDE.search(text) is None, OUTSIDE.search(text)
    assert "cdn.plot.ly" not in text.replace(plotly_js(), "")  # only inside plotly.js' own code
    assert text.count(plotly_js()) == 1  # plotly.js inlined exactly once, not per figure
    assert text.count("<script>") - 1 == text.count("Plotly.newPlot(")  # the rest: one per figure


def test_comparison_report_is_offline_escaped_and_says_what_produced_it(finished_runs):
    ws, info, runs = finished_runs
    title = '<img src=x onerror=alert(1)> "Q3" & <b>co</b>'
    report = compare_report(ws, [runs["most_popular"], runs["itemknn"]], title=title)
    text = report.html()
    _offline_checks(text)
    # The hostile title is shown as text.
    assert "<img src=x" not in text and "<b>co</b>" not in text
    assert "&lt;img src=x onerror=alert(1)&gt; &quot;Q3&quot; &amp; &lt;b&gt;co&lt;/b&gt;" in text
    # Provenance: dataset and version, split (protocol and seed), seeds, code version.
    assert f"{info.name} (id {info.id})" in text
    assert "version 1 · content " + info.content_hash[:12] in text
    assert "<td>random (seed 0)</td>" in text  # test_ratio 0.2 is the default: not repeated
    assert code_version() in text and code_version().startswith("recsys_core ")
    # Leaderboard bars, the trade-off, two segment views: four figures; paired tests below.
    assert len(report.figures) == 4
    assert "Paired tests against the best run" in text and "t_pvalue_holm" in text
    assert "A = itemknn" in text  # planted clusters: neighbours beat popularity


def test_comparison_refuses_runs_of_different_splits(finished_runs):
    ws, _, runs = finished_runs
    with pytest.raises(ConfigError, match="different datasets or splits"):
        compare_report(ws, [runs["most_popular"], runs["random"]])
    with pytest.raises(ConfigError, match="at least two"):
        compare_report(ws, [runs["itemknn"], runs["itemknn"]])


def test_run_report_metrics_ci_and_missing_map_named(finished_runs):
    ws, _, runs = finished_runs
    text = run_report(ws, runs["itemknn"]).html()
    _offline_checks(text)
    assert "ndcg@10" in text and "95% CI low" in text
    assert "No item map is cached" in text and f"embed {runs['itemknn']}" in text


def test_split_text_names_protocol_seed_and_options():
    assert split_text({"protocol": "temporal", "seed": 3, "test_ratio": 0.1}) == (
        "temporal (seed 3, test_ratio=0.1)"
    )
    assert split_text({}) == "default (seed 0)"


def test_cli_report_compare_writes_an_offline_file(finished_runs, tmp_path, capsys):
    ws, _, runs = finished_runs
    out = tmp_path / "cmp.html"
    code = main(["--workspace", str(ws.root), "report", "--compare", runs["most_popular"],
                 runs["itemknn"], "--out", str(out)])  # fmt: skip
    assert code == 0 and "opens offline" in capsys.readouterr().out
    _offline_checks(out.read_text())
    # Exactly one of RUN, --compare, --cards.
    assert main(["--workspace", str(ws.root), "report", "--out", str(out)]) == 2
    assert "exactly one of" in capsys.readouterr().err


def test_cards_report_escapes_every_user_string(finished_runs):
    ws, _, runs = finished_runs
    item = CardItem(
        rank=1, item_id="<i>1</i>", title=HOSTILE_TITLE, score=1.0,
        reasons=(f"You watched “{HOSTILE_TITLE}” (adds +0.5 to the score)",),
        check="Adds up: baseline 0 +1 from all 1 contributions = 1; the model's score is 1.",
        adds_up=True, explained=True,
    )  # fmt: skip
    card = WhyCard(run_id=runs["itemknn"], model="itemknn", user_id="<u>7</u>",
                   segment="typical", history_size=1, recent_history=(HOSTILE_TITLE,),
                   recommendations=(item,))  # fmt: skip
    text = cards_report(ws, [card], title=HOSTILE_TITLE).html()
    _offline_checks(text)
    assert HOSTILE_TITLE not in text and "<u>7</u>" not in text and "<i>1</i>" not in text
    assert text.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;") == 5  # title twice, etc.
    assert '<p class="check">Adds up' in text


def test_png_dir_without_kaleido_says_what_is_missing(finished_runs, tmp_path, monkeypatch, capsys):
    import builtins

    ws, _, runs = finished_runs
    real_import = builtins.__import__

    def no_kaleido(name, *args, **kwargs):
        if name == "kaleido":
            raise ImportError("no kaleido")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_kaleido)
    code = main(["--workspace", str(ws.root), "report", runs["itemknn"], "--out",
                 str(tmp_path / "r.html"), "--png-dir", str(tmp_path / "png")])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "kaleido is not installed" in err and "requirements-optional.txt" in err
    assert not (tmp_path / "r.html").exists()


@pytest.mark.slow
@pytest.mark.skipif(png_unavailable() is not None, reason=str(png_unavailable()))
def test_png_export_with_kaleido_and_local_chromium(tmp_path):
    import plotly.graph_objects as go

    fig = go.Figure(go.Bar(x=["a", "b"], y=[1, 2]))
    (path,) = write_pngs({"leaderboard bars": fig}, tmp_path)
    assert path.name == "leaderboard_bars.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
