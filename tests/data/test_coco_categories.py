"""COCO's categories by id, and the names that match them."""

from faster_rcnn.data.coco_categories import COCO_CATEGORIES, COCO_OUTPUTS, coco_category_id


def test_eighty_categories_on_ids_one_to_ninety_with_coco_s_ten_gaps() -> None:
    assert len(COCO_CATEGORIES) == 80 and len(set(COCO_CATEGORIES.values())) == 80
    gaps = set(range(1, COCO_OUTPUTS)) - set(COCO_CATEGORIES)
    assert gaps == {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}
    assert (COCO_CATEGORIES[1], COCO_CATEGORIES[90]) == ("person", "toothbrush")


def test_names_match_in_any_case_and_spacing_and_voc_s_names_too() -> None:
    assert coco_category_id("Cell-Phone") == coco_category_id(" cell_phone ") == 77
    voc = ("aeroplane", "diningtable", "motorbike", "pottedplant", "sofa", "tvmonitor")
    assert [coco_category_id(name) for name in voc] == [5, 67, 4, 64, 63, 72]
    assert coco_category_id("raccoon") is None and coco_category_id("") is None
