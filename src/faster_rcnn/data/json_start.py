"""The start of a JSON file: its object's first key, and the value that key holds; or
its list's first item.

What tells the JSON formats apart (a VIA export's first value is an image, a COCO file
starts with ``info``, ``licenses`` or ``images``, a CreateML file's first item is an
image) lies at the start of the file, and a COCO file may be a gigabyte: only its first
:data:`SNIFFED_BYTES` are read here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .dataset import read_text_start

# Enough of a file to hold its first key, and the first value of a small one.
SNIFFED_BYTES = 1 << 20
# JSON's white space, none or more: it always matches.
_JSON_SPACE = re.compile(r"[ \t\n\r]*")


def first_key(file: Path) -> str | None:
    """The first key of the JSON object ``file`` holds; ``None`` where it holds no object
    (a list, not JSON)."""
    found = _first_key(read_text_start(file, SNIFFED_BYTES))
    return None if found is None else found[0]


def first_entry(file: Path) -> tuple[str, Any] | None:
    """The first key of the JSON object ``file`` holds and its value; ``None`` where it
    holds no object, or that value runs past the bytes read (a longer file's)."""
    text = read_text_start(file, SNIFFED_BYTES)
    found = _first_key(text)
    if found is None:
        return None
    key, value_start = found
    try:
        value, _ = json.JSONDecoder().raw_decode(text, value_start)
    except ValueError:
        return None
    return key, value


def _first_key(text: str) -> tuple[str, int] | None:
    """The first key of the JSON object ``text`` starts, and where its value starts;
    ``None`` where ``text`` starts no object with a key."""
    start = _JSON_SPACE.match(text).end()
    if not text.startswith("{", start):
        return None
    try:
        key, end = json.JSONDecoder().raw_decode(text, _JSON_SPACE.match(text, start + 1).end())
    except ValueError:
        return None
    colon = _JSON_SPACE.match(text, end).end()
    if not isinstance(key, str) or not text.startswith(":", colon):
        return None
    return key, _JSON_SPACE.match(text, colon + 1).end()


def first_item(file: Path) -> Any:
    """The first item of the JSON list ``file`` holds (CreateML's first image); ``None``
    where it holds no list, an empty one, or that item runs past the bytes read."""
    text = read_text_start(file, SNIFFED_BYTES)
    start = _JSON_SPACE.match(text).end()
    if not text.startswith("[", start):
        return None
    try:
        item, _ = json.JSONDecoder().raw_decode(text, _JSON_SPACE.match(text, start + 1).end())
    except ValueError:
        return None
    return item
