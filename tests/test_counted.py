"""The count and noun of the lines the package prints agree: ``1 image``, ``2 images``."""

import pytest

from faster_rcnn.counted import counted, plural_of


@pytest.mark.parametrize(
    ("count", "noun", "plural", "written"),
    [
        (0, "image", None, "0 images"),
        (1, "image", None, "1 image"),
        (2, "image", None, "2 images"),
        (1, "box", None, "1 box"),
        (3, "box", None, "3 boxes"),
        (2, "class", None, "2 classes"),
        (2, "more copy", None, "2 more copies"),
        (2, "category", None, "2 categories"),
        (1.0, "minute", None, "1 minute"),
        (1.5, "object", None, "1.5 objects"),
        (0.1, "minute", None, "0.1 minutes"),
        (1, "image has", "images have", "1 image has"),
        (4, "image has", "images have", "4 images have"),
        (12480, "box", None, "12,480 boxes"),
        (1000000, "anchor", None, "1,000,000 anchors"),
    ],
)
def test_a_count_takes_the_singular_for_one_alone(count, noun, plural, written):
    assert counted(count, noun, plural) == written


@pytest.mark.parametrize(
    ("noun", "plural"),
    [("step", "steps"), ("process", "processes"), ("batch", "batches"), ("day", "days")],
)
def test_plural_of(noun, plural):
    assert plural_of(noun) == plural
