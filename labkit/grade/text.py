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

# C0 controls but tab, DEL, C1 controls, and the bidirectional overrides/isolates.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~&])")


def _escape_control(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal(text: object, limit: int | None = None, keep_newlines: bool = False) -> str:
    """``text`` safe to print on a terminal: control characters shown as escapes (newlines
    kept as they are with ``keep_newlines``)."""
    text = str(text)[:limit] if limit else str(text)
    if keep_newlines:
        return "\n".join(terminal(line) for line in text.split("\n"))
    return _CONTROL.sub(_escape_control, text.replace("\t", " "))


def inline(text: object, limit: int = 2000) -> str:
    """``text`` as one line of plain Markdown text, nothing in it interpreted."""
    text = " ".join(str(text)[:limit].split())
    text = _CONTROL.sub(_escape_control, unicodedata.normalize("NFC", text))
    return _MD_SPECIAL.sub(r"\\\1", text)


def block(text: object, info: str = "text") -> list[str]:
    """``text`` as a fenced code block (lines of Markdown) that the text cannot close."""
    body = _CONTROL.sub(lambda m: "\n" if m.group() == "\n" else _escape_control(m), str(text))
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + info, *body.split("\n"), fence]


def csv_cell(text: object) -> str:
    """A CSV cell on one line that a spreadsheet will not read as a formula."""
    text = terminal(" ".join(str(text).split()))
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
