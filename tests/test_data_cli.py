"""The data commands through recsys_core.cli.main.main on a temporary workspace."""

from __future__ import annotations

import json

from recsys_core.cli.main import main


def _run(capsys, workspace, *args: str) -> tuple[int, str, str]:
    code = main(["--workspace", str(workspace.root), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_import_list_profile_rename_delete(workspace, tmp_path, capsys):
    path = tmp_path / "shop.csv"
    path.write_text(
        "customer,product,stars,when\nc1,p1,5,1600000000\nc1,p1,3,1600000100\nc2,p2,4,1600000200\n"
    )
    items = tmp_path / "items.csv"
    items.write_text("product,title\np1,Lamp\np9,Ghost\n")
    code, out, _ = _run(
        capsys,
        workspace,
        "import",
        str(path),
        "--name",
        "shop",
        "--duplicates",
        "max",
        "--items",
        str(items),
    )
    assert code == 0 and "imported 'shop'" in out
    assert "2 users, 2 items, 2 interactions" in out
    assert "duplicates: 1 rows resolved by policy 'max'" in out
    assert "have no interaction" in out

    code, out, _ = _run(
        capsys, workspace, "import", str(path), "--duplicates", "max", "--items", str(items)
    )
    assert code == 0 and "already imported as 'shop'" in out

    code, out, _ = _run(capsys, workspace, "datasets", "--json")
    listed = json.loads(out)
    assert [d["name"] for d in listed] == ["shop"] and listed[0]["n_interactions"] == 2

    code, out, _ = _run(capsys, workspace, "profile", "shop", "--json")
    payload = json.loads(out)
    assert payload["stats"]["n_users"] == 2 and payload["stats"]["duplicates_removed"] == 1
    code, out, _ = _run(capsys, workspace, "profile", "shop")
    assert "popularity Gini" in out and "warning: fewer than 1,000 interactions" in out

    assert _run(capsys, workspace, "datasets", "rename", "shop", "store")[0] == 0
    code, out, _ = _run(capsys, workspace, "datasets")
    assert "store" in out and "shop " not in out
    assert _run(capsys, workspace, "datasets", "delete", "store")[0] == 0
    assert "no datasets yet" in _run(capsys, workspace, "datasets")[1]


def test_mapping_flags_and_errors(workspace, tmp_path, capsys):
    path = tmp_path / "odd.csv"
    path.write_text("a;b;c\nx;1;2\ny;2;3\n")
    code, _, err = _run(capsys, workspace, "import", str(path), "--separator", ",")
    assert code == 2 and err.startswith("error: ") and "';'" in err and len(err.splitlines()) == 1
    code, out, _ = _run(
        capsys,
        workspace,
        "import",
        str(path),
        "--map",
        "user=a",
        "--map",
        "item=b",
        "--map",
        "value=c",
        "--json",
    )
    assert code == 0 and json.loads(out)["report"]["columns"] == {
        "user": "a",
        "item": "b",
        "value": "c",
    }
    code, _, err = _run(capsys, workspace, "profile", "nope")
    assert code == 2 and "nope" in err


def test_synth(workspace, capsys):
    code, out, _ = _run(
        capsys, workspace, "synth", "--users", "50", "--items", "30", "--name", "demo"
    )
    assert code == 0 and "imported 'demo'" in out and "50 users" in out
