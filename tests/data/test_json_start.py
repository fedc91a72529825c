"""The start of a JSON file: its first key and value, read from the first bytes only."""

import json

import pytest

from faster_rcnn.data import json_start, labelme
from faster_rcnn.data.json_start import first_entry, first_item, first_key
from faster_rcnn.data.labelme import is_labelme_file


@pytest.mark.parametrize(
    ("text", "key", "entry"),
    [
        ('{"info": {"year": 2017}, "images": []}', "info", ("info", {"year": 2017})),
        (
            ' \n\t{ "a.jpg123" :\n{"filename": "a.jpg"}}',
            "a.jpg123",
            ("a.jpg123", {"filename": "a.jpg"}),
        ),
        ('[{"id": 1}]', None, None),  # Label Studio's export: a list
        ("{}", None, None),
        ("not json", None, None),
        ("", None, None),
    ],
)
def test_the_first_key_and_entry(tmp_path, text, key, entry):
    file = tmp_path / "a.json"
    file.write_text(text)
    assert first_key(file) == key
    assert first_entry(file) == entry


def test_utf16_with_its_byte_order_mark_and_utf8_with_its_own(tmp_path):
    file = tmp_path / "a.json"
    file.write_text('{"shapes": [], "imagePath": "a.jpg"}', encoding="utf-16")
    assert first_entry(file) == ("shapes", [])
    file.write_text('{"info": 1}', encoding="utf-8-sig")
    assert first_entry(file) == ("info", 1)


def test_a_first_value_past_the_bytes_read_gives_the_key_alone(tmp_path, monkeypatch):
    monkeypatch.setattr(json_start, "SNIFFED_BYTES", 64)
    file = tmp_path / "a.json"
    file.write_text(json.dumps({"images": [{"id": k} for k in range(100)], "info": {}}))
    assert first_key(file) == "images"
    assert first_entry(file) is None
    file.write_text(json.dumps({"info": {}, "images": [{"id": k} for k in range(100)]}))
    assert first_entry(file) == ("info", {})


@pytest.mark.parametrize(
    ("text", "item"),
    [
        (
            ' \n[ {"image": "a.jpg", "annotations": []}, {"image": "b.jpg"}]',
            {"image": "a.jpg", "annotations": []},
        ),
        ("[3, 4]", 3),
        ("[]", None),
        ('{"image": "a.jpg"}', None),  # an object, not a list
        ("not json", None),
    ],
)
def test_the_first_item_of_a_list(tmp_path, text, item):
    file = tmp_path / "a.json"
    file.write_text(text)
    assert first_item(file) == item


def test_a_first_item_past_the_bytes_read_is_none(tmp_path, monkeypatch):
    monkeypatch.setattr(json_start, "SNIFFED_BYTES", 64)
    file = tmp_path / "a.json"
    file.write_text(json.dumps([{"image": "a.jpg", "annotations": [{"label": "cat"}] * 20}]))
    assert first_item(file) is None
    file.write_text(json.dumps([{"image": "a.jpg"}, *[{"image": "b.jpg"}] * 20]))
    assert first_item(file) == {"image": "a.jpg"}


@pytest.mark.parametrize("first", ["info", "licenses", "images"])
def test_a_coco_file_is_no_labelme_file_told_without_reading_it_whole(tmp_path, monkeypatch, first):
    file = tmp_path / "_annotations.coco.json"
    coco = {"info": {}, "licenses": [], "images": [], "annotations": [], "categories": []}
    file.write_text(json.dumps({first: coco.pop(first), **coco}))

    def read_whole(path):
        raise AssertionError(f"{path} read whole")

    monkeypatch.setattr(labelme, "read_text", read_whole)
    assert not is_labelme_file(file)
    # A LabelMe file is still read whole (its keys may come in any order).
    file.write_text(json.dumps({"version": "5.4.1", "shapes": [], "imagePath": "a.jpg"}))
    with pytest.raises(AssertionError, match="read whole"):
        is_labelme_file(file)
