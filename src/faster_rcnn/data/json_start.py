"""The start of a JSON file: its object's first key, and the value that key holds; or
its list's first item.

What tells the JSON formats apart (a VIA export's first value is an image, a COCO file
starts with ``info``, ``licenses`` or ``images``, a CreateML file's first item is an
image) lies at the start of the file, and a COCO file may be a gigabyte: only its first
:data:`SNIFFED_BYTES` are read here.
"""

from __future__ import annotations

import codecs
import json
import re
from pathlib import Path
from typing import Any

# Enough of a file to hold its first key, and the first value of a small one.
SNIFFED_BYTES = 1 << 20
# JSON's white space, none or more: it always matches.
_JSON_SPACE = re.compile(r"[ \t\n\r]*")


def first_key(file: Path) -> str | None:
    """The first key of the JSON object ``file`` holds; ``None`` where it holds no object
    (a list, not JSON)."""
    found = _first_key(_start_of(file))
    return None if found is None else found[0]


def first_entry(file: Path) -> tuple[str, Any] | None:
    """The first key of the JSON object ``file`` holds and its value; ``None`` where it
    holds no object, or that value runs past the bytes read (a longer file's)."""
    text = _start_of(file)
    found = _first_key(text)
    if found is None:
        return None
    key, value_start = found
    try:
        value, _ = json.JSONDecoder().raw_decode(text, value_start)
    except ValueError:
        return None
    return key, value


def _start_of(file: Path) -> str:
    """The first :data:`SNIFFED_BYTES` of ``file`` as text: UTF-8, or UTF-16 where a
    byte-order mark says so (as :func:`.dataset.read_text` reads the whole); a character
    cut off at the end is dropped."""
    with file.open("rb") as opened:
        head = opened.read(SNIFFED_BYTES)
    utf16 = head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    return head.decode("utf-16" if utf16 else "utf-8-sig", errors="ignore")


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
    text = _start_of(file)
    start = _JSON_SPACE.match(text).end()
    if not text.startswith("[", start):
        return None
    try:
        item, _ = json.JSONDecoder().raw_decode(text, _JSON_SPACE.match(text, start + 1).end())
    except ValueError:
        return None
    return item
