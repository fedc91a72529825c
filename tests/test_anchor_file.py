"""Anchor files: the JSON that ``faster-rcnn anchors --fit`` writes and ``train --anchors``
reads."""

import json

import pytest

from faster_rcnn.anchor_file import read_anchor_file, with_anchor_file, write_anchor_file
from faster_rcnn.cli import main
from faster_rcnn.config import AnchorConfig
from faster_rcnn.models import preset_config
from faster_rcnn.train.checkpoint import load_model

# Four levels of 4 sizes x 3 ratios, as the small preset has, but other sizes and offset.
FITTED = AnchorConfig(
    sizes=(
        (12.7, 16.0, 20.16, 25.4),
        (25.4, 32.0, 40.32, 50.8),
        (50.8, 64.0, 80.64, 101.6),
        (101.6, 128.0, 161.28, 203.2),
    ),
    aspect_ratios=((0.707, 1.0, 2.0),) * 4,
    offset=0.5,
)
ONE_LEVEL = {"sizes": [[32, 64]], "aspect_ratios": [[0.5, 1.0, 2.0]]}


def test_write_and_read_back(tmp_path):
    notes = {"fitted_at_iou": 0.7, "covered": {"start": 0.41, "fitted": 0.61}, "data": "x"}
    path = write_anchor_file(tmp_path / "new" / "anchors.json", FITTED, notes)
    assert path == tmp_path / "new" / "anchors.json"
    data = json.loads(path.read_text())
    assert data["sizes"] == [list(level) for level in FITTED.sizes]
    assert data["aspect_ratios"] == [[0.707, 1.0, 2.0]] * 4
    assert data["offset"] == 0.5
    assert data["covered"] == notes["covered"]
    # The notes are ignored on reading; the anchors come back as they were.
    assert read_anchor_file(path) == FITTED
    # Without an offset, the config's default (0).
    (tmp_path / "plain.json").write_text(json.dumps({**ONE_LEVEL, "comment": "any other key"}))
    assert read_anchor_file(tmp_path / "plain.json") == AnchorConfig(
        sizes=((32, 64),), aspect_ratios=((0.5, 1.0, 2.0),), offset=0.0
    )


def test_notes_never_replace_the_anchors(tmp_path):
    # A note under the name of a field must not change the anchors the file holds.
    path = tmp_path / "anchors.json"
    try:
        write_anchor_file(path, FITTED, {"offset": 0.0, "sizes": "see the plot"})
    except ValueError:
        return  # refusing such notes is as good
    assert read_anchor_file(path) == FITTED


BAD_FILES = {
    "not JSON": ("{'sizes': [[32]]", "not a JSON anchor file"),
    "not an object": ("[[32], [1.0]]", "needs 'sizes' and 'aspect_ratios'"),
    "no sizes": ('{"aspect_ratios": [[1.0]]}', "needs 'sizes' and 'aspect_ratios'"),
    "no ratios": ('{"sizes": [[32]]}', "needs 'sizes' and 'aspect_ratios'"),
    "different anchor counts": (
        '{"sizes": [[16, 32], [64]], "aspect_ratios": [[1.0], [1.0]]}',
        "the same number of anchors per location on every level, got [2, 1]",
    ),
    "negative size": ('{"sizes": [[-16]], "aspect_ratios": [[1.0]]}', "sizes[0] must be positive"),
    "zero ratio": (
        '{"sizes": [[16]], "aspect_ratios": [[0]]}',
        "aspect_ratios[0] must be positive",
    ),
    "a size not a number": ('{"sizes": [["16"]], "aspect_ratios": [[1]]}', "must be a number"),
    "flat sizes": ('{"sizes": [16, 32], "aspect_ratios": [1.0]}', "must be a tuple"),
    "offset out of range": (
        '{"sizes": [[16]], "aspect_ratios": [[1]], "offset": 1.5}',
        "offset must be in [0, 1)",
    ),
    "a size twice on a level": (
        '{"sizes": [[16, 16]], "aspect_ratios": [[1.0]]}',
        "sizes[0] must be distinct (a repeated value repeats its anchors), got [16, 16]",
    ),
    "ratios for other levels": (
        '{"sizes": [[16], [32]], "aspect_ratios": [[1.0]]}',
        "one tuple per level of sizes (2)",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_file_is_a_one_line_error_naming_it(tmp_path, case):
    text, expected = BAD_FILES[case]
    path = tmp_path / "anchors.json"
    path.write_text(text)
    with pytest.raises(ValueError) as error:
        read_anchor_file(path)
    message = str(error.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "\n" not in message


def test_a_file_not_in_utf8_is_named(tmp_path):
    path = tmp_path / "anchors.json"
    path.write_bytes(b'{"sizes": [[16]], "aspect_ratios": [[1.0]], "data": "\xe9"}')
    with pytest.raises(ValueError, match="not UTF-8") as error:
        read_anchor_file(path)
    assert str(path) in str(error.value)


def test_with_anchor_file_replaces_only_the_anchors(tmp_path):
    path = write_anchor_file(tmp_path / "fitted.json", FITTED)
    small = preset_config("small", 4)
    config = with_anchor_file(small, path)
    assert config.anchors == FITTED
    assert config.replace(anchors=small.anchors) == small
    # One level of 2 x 3 anchors suits the paper's single feature map...
    one_level = tmp_path / "one_level.json"
    one_level.write_text(json.dumps(ONE_LEVEL))
    vgg = with_anchor_file(preset_config("paper_vgg16", 4), one_level)
    assert vgg.anchors.sizes == ((32, 64),)
    # ... not the small backbone's four.
    with pytest.raises(ValueError) as error:
        with_anchor_file(small, one_level)
    message = str(error.value)
    assert message.startswith(f"{one_level}: ")
    assert "one tuple per feature map" in message and "got 1" in message
    assert "\n" not in message


TRAIN = ["train", "--data", "synthetic:8", "--steps", "2", "--batch-size", "2"]
TINY = ["--min-size", "64", "--max-size", "64"]


def test_train_uses_the_anchor_file(tmp_path, capsys):
    path = write_anchor_file(tmp_path / "fitted.json", FITTED, {"covered": {"fitted": 0.5}})
    out = tmp_path / "run"
    assert main([*TRAIN, *TINY, "--anchors", str(path), "--out", str(out)]) == 0
    model = load_model(out / "model.safetensors")
    assert model.config.anchors == FITTED
    assert model.config.transform.min_size == (64,)
    assert model.rpn.anchor_generator.num_anchors_per_location() == [12] * 4


@pytest.mark.parametrize(
    ("command", "content", "expected"),
    [
        ("train", "{not json", "not a JSON anchor file"),
        ("train", json.dumps(ONE_LEVEL), "one tuple per feature map"),
        ("train", None, "does not exist"),
        ("anchors", None, "does not exist"),
        ("train", "folder", "is a folder, not an anchor file"),
        ("anchors", "folder", "is a folder, not an anchor file"),
        ("anchors", json.dumps({"sizes": [[-1]], "aspect_ratios": [[1]]}), "must be positive"),
        ("anchors", json.dumps(ONE_LEVEL), "one tuple per feature map"),
    ],
)
def test_cli_refuses_a_bad_file_in_one_line(
    tmp_path, capsys, monkeypatch, command, content, expected
):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "anchors.json"
    if content == "folder":
        path.mkdir()
    elif content is not None:
        path.write_text(content)
    if command == "train":
        argv = [*TRAIN, *TINY, "--out", str(tmp_path / "run")]
    else:
        argv = ["anchors", "--data", "synthetic:2", "--out", str(tmp_path / "measured")]
    assert main([*argv, "--anchors", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("faster-rcnn: error: ")
    assert str(path) in err and expected in err
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_a_fit_never_writes_over_the_anchor_file_it_starts_from(tmp_path, capsys):
    path = write_anchor_file(tmp_path / "run" / "fitted_anchors.json", FITTED, {})
    before = path.read_text()
    argv = ["anchors", "--data", "synthetic:2", "--anchors", str(path), "--fit"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == (
        f"faster-rcnn: error: --anchors {path}: --fit would write its fitted anchors over "
        "it; give another --out\n"
    )
    assert path.read_text() == before
    assert not (tmp_path / "run" / "anchors.png").exists()


def test_a_fit_records_the_input_scale_it_was_fitted_at(tmp_path, capsys):
    # The boxes are resized as evaluation resizes them: the last --min-size, capped by
    # --max-size; the file held neither, so train could not tell another scale.
    argv = ["anchors", "--data", "synthetic:2", "--min-size", "96", "128", "--max-size", "200"]
    assert main([*argv, "--fit", "--out", str(tmp_path)]) == 0
    notes = json.loads((tmp_path / "fitted_anchors.json").read_text())
    assert (notes["fitted_at_min_size"], notes["fitted_at_max_size"]) == (128, 200)


@pytest.mark.parametrize(
    ("scale", "sizes", "warned"),
    [
        # Fitted at 128 / 200, trained at 64 / 64: boxes half the size the anchors fit.
        ({"fitted_at_min_size": 128, "fitted_at_max_size": 200}, TINY, True),
        # The last --min-size is evaluation's, the one a fit resizes at.
        ({"fitted_at_min_size": 64, "fitted_at_max_size": 64}, [*TINY[:1], "48", *TINY[1:]], False),
        # A file that does not say its scale (older, or by hand) is taken as it is.
        ({}, TINY, False),
    ],
)
def test_train_warns_of_anchors_fitted_at_another_scale(tmp_path, capsys, scale, sizes, warned):
    path = write_anchor_file(tmp_path / "fitted.json", FITTED, scale)
    out = tmp_path / "run"
    assert main([*TRAIN, *sizes, "--anchors", str(path), "--out", str(out)]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if f"--anchors {path}" in line]
    expected = (
        f"faster-rcnn: warning: --anchors {path} were fitted to boxes resized at --min-size "
        "128 --max-size 200, this run resizes at 64 and 64: its objects are not the size the "
        "anchors were fitted for; refit them at its sizes (faster-rcnn anchors --fit "
        "--min-size 64 --max-size 64)"
    )
    assert lines == ([expected] if warned else [])
    assert load_model(out / "model.safetensors").config.anchors == FITTED


def test_a_bad_recorded_scale_is_a_one_line_error_naming_the_file(tmp_path, capsys):
    path = write_anchor_file(tmp_path / "fitted.json", FITTED, {"fitted_at_min_size": "800"})
    path.write_text(path.read_text().replace("{", '{\n  "fitted_at_max_size": 1333,', 1))
    argv = [*TRAIN, *TINY, "--anchors", str(path), "--out", str(tmp_path / "run")]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"faster-rcnn: error: {path}: fitted_at_min_size must be a positive integer, got '800'\n"
    )
