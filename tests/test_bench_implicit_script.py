"""benchmarks/ials_vs_implicit.py: the side-by-side runner, with a stand-in for implicit.

The real implicit is not installed here (it is not a dependency); a stand-in package with the
same entry point (random factors) checks the alternation, the timing and the evaluation.
"""

from __future__ import annotations

import importlib.util
import stat
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "ials_vs_implicit.py"

STAND_IN = """
import numpy as np

class AlternatingLeastSquares:
    def __init__(self, factors, iterations, random_state, num_threads):
        self.factors, self.seed = factors, random_state

    def fit(self, user_items, show_progress=False):
        rng = np.random.default_rng(self.seed)
        self.user_factors = rng.normal(size=(user_items.shape[0], self.factors)).astype("f4")
        self.item_factors = rng.normal(size=(user_items.shape[1], self.factors)).astype("f4")
"""


def _load_script():
    spec = importlib.util.spec_from_file_location("ials_vs_implicit", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def stand_in_python(tmp_path: Path) -> str:
    package = tmp_path / "site" / "implicit"
    (package / "cpu").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "cpu" / "__init__.py").write_text("")
    (package / "cpu" / "als.py").write_text(STAND_IN)
    wrapper = tmp_path / "python"
    wrapper.write_text(
        f'#!/bin/sh\nPYTHONPATH="{tmp_path / "site"}" exec "{sys.executable}" "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return str(wrapper)


def test_side_by_side_alternates_and_scores_both(stand_in_python, capsys):
    script = _load_script()
    argv = ["--implicit-python", stand_in_python, "--rounds", "2", "--fits", "1"]
    results = script.main(argv + ["--factors", "16", "--iterations", "3"])
    assert set(results) == {"implicit", "ours"}
    for r in results.values():
        assert r["fits"] == 2 and 0 < r["min_s"] <= r["median_s"] <= r["max_s"]
    # random stand-in factors against a real iALS fit on the sample
    assert results["ours"]["ndcg@10"] > 0.1 > results["implicit"]["ndcg@10"]
    printed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert printed[:4] == ["implicit", "ours", "implicit", "ours"]  # alternated


@pytest.mark.skipif(
    importlib.util.find_spec("implicit") is not None, reason="implicit is installed here"
)
def test_missing_implicit_names_the_install_command():
    with pytest.raises(SystemExit, match="pip install --only-binary=:all: implicit"):
        _load_script().check_implicit(sys.executable)
    with pytest.raises(SystemExit, match="cannot import implicit"):
        _load_script().check_implicit("/nonexistent/python")
