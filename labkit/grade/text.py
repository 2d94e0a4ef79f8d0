"""Every string a student controls, made safe where a person reads it.

Student text reaches people in three places: the instructor's terminal (the summary), the
feedback pages (Markdown, often shown as HTML) and ``gradebook.csv`` (a spreadsheet). Each
has one function here, and ``report`` uses nothing else for student text:

* ``terminal``: control characters (ESC, ``\\r``, ``\\n``, C1, DEL) and Unicode
  direction overrides become visible ``\\xNN`` / ``\\uNNNN`` escapes, so nothing can move the
  cursor, recolour the screen or draw a forged line;
* ``inline``: one line of Markdown text: HTML and Markdown punctuation escaped, newlines
  folded, so it can neither open a tag (``<script>``, ``onerror=``) nor start a heading,
  a table row or a link;
* ``block``: a fenced code block whose fence is longer than any run of backticks in the
  text, so the text cannot close it; control characters escaped as for the terminal;
* ``csv_cell``: one line, and never read as a formula.
"""

from __future__ import annotations

import re
import unicodedata

# C0 and C1 controls, DEL, Unicode's invisible format characters (bidirectional overrides
# and marks such as U+202E or U+061C, zero-width characters), line and paragraph separators,
# and lone surrogates: each is shown as an escape.
_INVISIBLE = {"Cc", "Cf", "Zl", "Zp", "Cs"}  # Cs: lone surrogates, which no file can hold
# What Markdown could read as syntax anywhere in a line: HTML, links and images, emphasis,
# code spans, tables, headings' hashes, entities, escapes.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~&!@])")
# What GitHub's and mistune's autolinks turn into a link without brackets: "x://", "www."
# and e-mail addresses (their "@" is escaped above).
_AUTOLINK = re.compile(r"(?i)[a-z][a-z0-9+.-]*://|\bwww\.")
_MD_LINE_START = re.compile(r"^(\d*)([-+=>.)])")  # a list, quote or setext line if first


def _escape_control(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _visible(text: str, keep: str = "") -> str:
    return "".join(
        c if c in keep or unicodedata.category(c) not in _INVISIBLE else _escape_control(c)
        for c in text
    )


def terminal(text: object, limit: int | None = None, keep_newlines: bool = False) -> str:
    """``text`` safe to print on a terminal: control and invisible format characters shown
    as escapes (newlines kept as they are with ``keep_newlines``)."""
    text = str(text)[:limit] if limit else str(text)
    return _visible(text.replace("\t", " "), "\n" if keep_newlines else "")


def inline(text: object, limit: int = 2000) -> str:
    """``text`` as one line of plain Markdown text, nothing in it interpreted."""
    text = _visible(" ".join(str(text)[:limit].split()))
    text = _MD_SPECIAL.sub(r"\\\1", unicodedata.normalize("NFC", text))
    text = _AUTOLINK.sub(lambda m: m.group().replace(":", "\\:").replace(".", "\\."), text)
    return _MD_LINE_START.sub(r"\1\\\2", text)


def block(text: object, info: str = "text") -> list[str]:
    """``text`` as a fenced code block (lines of Markdown) that the text cannot close."""
    body = _visible(str(text), "\n")
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + info, *body.split("\n"), fence]


def csv_cell(text: object) -> str:
    """A CSV cell on one line that a spreadsheet will not read as a formula."""
    text = terminal(" ".join(str(text).split()))
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
