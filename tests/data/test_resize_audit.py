"""The objects too small once resized, counted."""

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
    assert audit.boxes == 4
    assert audit.notes() == [
        "3 of the 4 boxes are under 2 px on a side once resized to 100 px ('cell' 2, "
        "'platelet' 1; the first: a.jpg 'cell' [0, 0, 19, 50], 1.9 px once resized): too "
        "small for an anchor to match or the model to find; an annotation slip most likely, "
        "or objects that need a larger --min-size"
    ]


def test_tiny_boxes_past_a_slips_share_are_said_to_be_small_objects_not_slips():
    """1,562 of 3,594 boxes on 6000x4000 images of cars and trees were called annotation
    slips most likely; a few (under 10), or one box in 20 (5%), still are."""
    audit = ResizeAudit((100,), max_size=1000)
    boxes = torch.tensor([[0, 0, 5, 5]] * 10 + [[0, 0, 50, 50]] * 190, dtype=torch.float)
    audit.count("a.jpg", (1000, 1000), boxes, ["cell"] * 200)
    slips = "an annotation slip most likely, or objects that need a larger --min-size"
    assert audit.notes()[0].endswith(slips)
    audit.count("b.jpg", (1000, 1000), boxes[:1], ["cell"])
    assert audit.notes()[0].endswith(
        "too many for annotation slips: objects small against their images, which need a "
        "larger --min-size"
    )


def test_a_dataset_of_small_images_enlarged_many_times_is_not_noted():
    """A 32x32 crop at 800 px is enlarged 25 times: that brings its objects to the
    anchors' sizes, and is no mistake to note; its 8-px box is 200 px there."""
    audit = ResizeAudit((800,), max_size=1333)
    audit.count("crop.jpg", (32, 32), torch.tensor([[12, 12, 20, 20.0]]), ["cell"])
    assert audit.tiny == {} and audit.notes() == []
