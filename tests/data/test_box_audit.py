"""Boxes clipped to their image or dropped, and named where they are counted."""

import pytest

from faster_rcnn.data.box_audit import BoxAudit


class CountedName(str):
    """A box's location that counts how often it is written into a message."""

    formatted = 0

    def __format__(self, spec: str) -> str:
        CountedName.formatted += 1
        return super().__format__(spec)


def test_a_box_past_the_border_is_clipped_in_float32_and_named_with_its_corners_as_given():
    """0.1 is stored as float32 holds it (0.100000001...); the corners outside the
    640x480 image move to its border, and the box is named as the file gives it."""
    audit = BoxAudit()
    box = audit.clip([-3, 0.1, 700, 90], 640, 480, "a.xml object 2")
    assert box == [0.0, pytest.approx(0.1, abs=1e-8), 640.0, 90.0]
    assert box[1] == 0.10000000149011612
    assert audit.clipped == ["a.xml object 2 [-3, 0.1, 700, 90] on 640x480"]
    assert audit.dropped == []


def test_a_box_outside_its_image_is_dropped_and_named_in_the_frame_given():
    audit = BoxAudit()
    where = "a.txt, line 2"
    assert audit.clip([1.2, 0.5, 1.5, 0.7], 1.0, 1.0, where, frame="in image fractions") is None
    assert audit.dropped == [
        "a.txt, line 2 [1.2, 0.5, 1.5, 0.7] in image fractions: outside the image"
    ]


def test_a_box_inside_its_image_is_kept_as_float32_holds_it_without_naming_it():
    """The usual box (a COCO file holds a million of them) is neither counted nor
    written into a message: only a clipped or dropped one is."""
    audit = BoxAudit()
    CountedName.formatted = 0
    box = audit.clip([1.5, 2.25, 30.1, 40.0], 64, 48, CountedName("annotation 7"))
    assert box == [1.5, 2.25, 30.100000381469727, 40.0]
    assert audit.clipped == [] and audit.dropped == []
    assert CountedName.formatted == 0
    audit.clip([1.5, 2.25, 70.0, 40.0], 64, 48, CountedName("annotation 8"))
    assert CountedName.formatted == 1
    assert audit.clipped == ["annotation 8 [1.5, 2.25, 70, 40] on 64x48"]
