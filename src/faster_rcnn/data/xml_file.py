"""An annotation XML file's root element (Pascal VOC's, CVAT's), read in the encoding
its declaration names, else as UTF-8 or UTF-16, as the XML spec reads it.

A file of another encoding without a declaration saying so (Latin-1 written by a script,
Windows-1252 by Notepad) stops the parser at its first non-ASCII byte as "not
well-formed": the error says instead that it is not UTF-8 text, as every other
annotation file's does (:func:`.dataset.read_text`), naming that byte.
"""

from __future__ import annotations

import re
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as ElementTree

from .dataset import read_text

# The XML declaration's encoding (``<?xml version="1.0" encoding="ISO-8859-1"?>``), in
# the first bytes of a file written in an ASCII-compatible encoding.
_DECLARED_ENCODING = re.compile(rb"<\?xml[^>]*\bencoding\s*=\s*[\"']([A-Za-z0-9._-]+)")
_DECLARATION_BYTES = 256


def xml_root(path: Path) -> Element:
    """The root element of the XML file ``path``.

    Raises:
        ValueError: in one line naming the file: it is not UTF-8 text and declares no
            other encoding (naming the first bad byte, as :func:`.dataset.read_text`
            does), or it is malformed XML.
    """
    try:
        return ElementTree.parse(path).getroot()
    except ParseError as error:
        if not _declares_another_encoding(path):
            read_text(path)  # Refuses a file that is not UTF-8 (or UTF-16) text.
        raise ValueError(f"{path}: malformed XML ({error})") from None


def _declares_another_encoding(path: Path) -> bool:
    """Whether ``path``'s XML declaration names an encoding other than UTF-8 or UTF-16,
    which the parser has read it in."""
    with path.open("rb") as file:
        declared = _DECLARED_ENCODING.search(file.read(_DECLARATION_BYTES))
    if declared is None:
        return False
    name = declared[1].decode("ascii").lower().replace("-", "").replace("_", "")
    return name not in ("utf8", "utf16")
