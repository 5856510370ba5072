"""Names that come from a user's files (class folders, image files), made safe to show.

A folder may be called `=HYPERLINK(...)` and a file `=1+2.png`: a spreadsheet opening the CSV
they are written to would run them as formulas (CSV injection), and control characters in a
name (an escape sequence, a carriage return) rewrite what the terminal shows. Cells follow the
OWASP rule: one that begins with `=`, `+`, `-`, `@`, a tab or a carriage return is prefixed
with a single quote, which spreadsheets show but never evaluate.
"""

from __future__ import annotations

import unicodedata

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def without_control_characters(text: str) -> str:
    """`text` with every control character (C0, DEL, C1) shown as its escape, e.g. `\\x1b`."""
    return "".join(
        char.encode("unicode_escape").decode("ascii")
        if unicodedata.category(char) == "Cc"
        else char
        for char in text
    )


def spreadsheet_cell(text: str) -> str:
    """A name as a CSV cell: no formula a spreadsheet would evaluate, no control character.
    The check looks at the raw name, so a leading tab or CR is caught before it is escaped."""
    quoted = "'" + text if text.startswith(FORMULA_STARTS) else text
    return without_control_characters(quoted)
