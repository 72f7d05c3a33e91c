"""Client text in messages, and text that can be stored at all.

A refusal names the value it refuses so the client can find it, but a client controls how long
that value is: a message quotes only a short prefix, so a megabyte of input never comes back as
a megabyte of error (nor goes to a log). And PostgreSQL text holds neither NUL nor a lone
surrogate (a string of Python or JSON may hold both): such text is refused before it is used.
"""

from __future__ import annotations

import re

QUOTED_LENGTH = 40
"""Characters of a client's value a message repeats."""

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def quoted(value: object, limit: int = QUOTED_LENGTH) -> str:
    """`value` quoted for a message: its first `limit` characters, and an ellipsis if cut."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}… ({len(text)} characters)"


def unstorable(text: str) -> str | None:
    """What makes `text` unstorable (a NUL or a lone surrogate), None when it can be stored."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "a NUL character (U+0000)"
    return f"a lone surrogate (U+{ord(found.group()):04X})"
