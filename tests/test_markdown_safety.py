"""User-supplied text is shown literally: the md() escape (the Explain page with a hostile title
is tested in test_app_explain.py)."""

from __future__ import annotations

import pytest

from recsys_core.viz.markdown import ZERO_WIDTH_SPACE, md


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("**bold** [link](http://x)", r"\*\*bold\*\* \[link\](http:" + ZERO_WIDTH_SPACE + "//x)"),
        ("<img src=x onerror=alert(1)>", r"\<img src=x onerror=alert(1)\>"),
        ("$x^2$ ~~gone~~ `code` a|b", r"\$x^2\$ \~\~gone\~\~ \`code\` a\|b"),
        ("_em_ mlp_layers", r"\_em\_ mlp_layers"),
        ("- item", r"\- item"),
        ("1. first", r"1\. first"),
        ("# title\nsecond line", r"\# title second line"),
        (":material/home: :smile:", ":" + ZERO_WIDTH_SPACE + "material/home:"
         + " :" + ZERO_WIDTH_SPACE + "smile:"),
        ("Where: ratings.csv, row 3", "Where: ratings.csv, row 3"),  # plain text unchanged
        (r"C:\data", "C:" + ZERO_WIDTH_SPACE + r"\\data"),
    ],
)
def test_md_escapes_every_markup_opener(raw, shown):
    assert md(raw) == shown
