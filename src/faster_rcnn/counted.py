"""A count written with its noun in agreement, for the lines the package prints:
``1 image``, ``3 images``, ``1 box``, ``1 image has`` / ``2 images have``, ``12,480 boxes``."""

from __future__ import annotations


def counted(count: float, noun: str, plural: str | None = None) -> str:
    """``count`` and ``noun``, the noun plural unless ``count`` is 1 (``0 images``,
    ``1.5 objects``, ``12,480 boxes``).

    Args:
        count: an int, its thousands separated by commas as the explain figures write
            them (``12,480``), or a float written as ``:g`` writes it (``1.5``).
        noun: the singular; its plural adds ``es`` after s, x, ch or sh (``boxes``),
            ``ies`` for a ``y`` after a consonant (``copies``), else ``s``.
        plural: the plural, where it is not made so: a noun with its verb (``"image
            has"``, ``"images have"``) or an irregular one.
    """
    number = f"{count:g}" if isinstance(count, float) else f"{count:,}"
    return f"{number} {noun if count == 1 else plural or plural_of(noun)}"


def plural_of(noun: str) -> str:
    """``box`` -> ``boxes``, ``copy`` -> ``copies``, ``image`` -> ``images``."""
    if noun.endswith(("s", "x", "ch", "sh")):
        return f"{noun}es"
    if noun.endswith("y") and len(noun) > 1 and noun[-2] not in "aeiou":
        return f"{noun[:-1]}ies"
    return f"{noun}s"
