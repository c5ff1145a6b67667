"""Show user-supplied text (titles, ids, names, column names, file contents) as text.

Streamlit renders the strings given to ``st.markdown``, ``st.caption``, ``st.success`` and the
like as Markdown, with its own ``:color[...]`` directives and ``:material/icon:`` and emoji
shortcodes. A title ``**bold** [link](http://x)`` would render bold with a live link; an id
``<img src=x>`` or ``$x$`` would turn into markup. :func:`md` makes any value literal inside
such a string, changing as little as it can (so ``mlp_layers`` or ``ratings.csv`` still read
and search as typed):

- every character that opens Markdown or Streamlit markup anywhere in a line is
  backslash-escaped: ``\\ ` * [ ] < > # ~ $ | { } &``;
- ``_`` is escaped where it could open emphasis (not between letters or digits);
- a leading list or heading marker (``-``, ``+``, ``=``, ``1.``) is escaped;
- line breaks become spaces (one inline run of text);
- a zero-width space follows each ``:`` that touches a word, because Streamlit expands
  shortcodes after Markdown parsing, where a backslash no longer counts.
"""

from __future__ import annotations

import re

_ALWAYS = re.compile(r"([\\`*\[\]<>#~$|{}&])")
_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
_LEADING = re.compile(r"^(\s*)([-+=]|\d+[.)])")
_COLON_WORD = re.compile(r":(?=\S)")
_BREAKS = re.compile(r"[\r\n\t\v\f]+")
ZERO_WIDTH_SPACE = "\u200b"


def md(value: object) -> str:
    """``value`` as a literal for an f-string passed to ``st.markdown`` and its kin.

    ``md("**bold** [x](http://y)")`` is ``\\*\\*bold\\*\\* \\[x\\](http:`` + zero-width space
    + ``//y)``: it renders as the characters typed.
    """
    text = _BREAKS.sub(" ", str(value))
    text = _ALWAYS.sub(r"\\\1", text)
    text = _UNDERSCORE.sub(r"\\_", text)
    text = _LEADING.sub(lambda m: m.group(1) + m.group(2)[:-1] + "\\" + m.group(2)[-1], text)
    return _COLON_WORD.sub(":" + ZERO_WIDTH_SPACE, text)
