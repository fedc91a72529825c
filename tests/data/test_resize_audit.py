"""The objects too small once resized and the images enlarged many times, counted."""

import torch

from faster_rcnn.data.resize_audit import ResizeAudit


def test_boxes_under_two_pixels_at_the_smallest_size_drawn_are_counted_by_class():
    """A 1000x1000 image at 100 px is shrunk 10 times: sides under 20 px there are under
    2 px; a thin box counts by its shorter side."""
    audit = ResizeAudit((100, 200), max_size=1000)
    boxes = torch.tensor([[0, 0, 19, 50], [0, 0, 20, 20], [5, 5, 100, 15], [0, 0, 10, 10.0]])
    audit.count("a.jpg", (1000, 1000), boxes, ["cell", "cell", "cell", "platelet"])
    assert audit.tiny == {"cell": 2, "platelet": 1}
    assert audit.tiny_example == "a.jpg 'cell' [0, 0, 19, 50], 1.9 px once resized"
    assert audit.enlarged == []


def test_images_enlarged_more_than_four_times_at_the_largest_size_drawn():
    """At 200 px a 50x60 image is enlarged exactly 4 times (not more), a 49x60 one more."""
    audit = ResizeAudit((100, 200), max_size=1000)
    for name, size in (("a", (50, 60)), ("b", (49, 60)), ("c", (20, 20))):
        audit.count(name, size, torch.zeros(0, 4), [])
    assert [(round(factor, 2), name) for factor, name, _ in audit.enlarged] == [
        (4.08, "b"),
        (10.0, "c"),
    ]
    assert "(the most 10.0 times: c, 20x20)" in audit.notes()[0]
    assert "`train --min-size 20` (their median shorter side" in audit.notes()[0]
