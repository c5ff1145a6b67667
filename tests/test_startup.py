"""The command line starts without loading the heavy libraries it does not need.

Start-up time itself depends on the machine, so the tests check its cause instead: which
modules a command imports. torch alone costs seconds to import; ``--help``, ``datasets`` and
``runs list`` must not pay for it (nor for pandas, scipy, shap, umap or plotly).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = (
    "torch",
    "pandas",
    "scipy",
    "scipy.stats",
    "numpy",
    "shap",
    "umap",
    "plotly",
    "sklearn",
    "optuna",
    "ray",
)

PROBE = """
import contextlib, io, json, sys
from recsys_core.cli.main import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        code = main(sys.argv[1:])
    except SystemExit as stop:  # --help exits through argparse
        code = stop.code
heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)
print(json.dumps({{"code": code, "heavy": heavy}}))
"""


def _loaded_by(*argv: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(HEAVY=HEAVY), *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "argv",
    [("--help",), ("datasets",), ("runs", "list"), ("datasets", "--json")],
    ids=lambda a: " ".join(a),
)
def test_light_commands_do_not_import_heavy_libraries(tmp_path, argv):
    result = _loaded_by("--workspace", str(tmp_path), *argv)
    assert result["code"] == 0
    assert result["heavy"] == [], f"`{' '.join(argv)}` imported {result['heavy']}"


def test_model_registry_loads_torch_but_not_the_explorer_libraries():
    # An evaluation imports the registry and the evaluator. The probe must be able to fail: they
    # need torch. They must not wait for scikit-learn (content features), shap, umap or plotly,
    # which only some models and pages use.
    code = (
        "import json, sys; import recsys_core.models, recsys_core.evaluate; "
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    heavy = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert "torch" in heavy
    assert not {"sklearn", "scipy.stats", "shap", "umap", "plotly"} & heavy
