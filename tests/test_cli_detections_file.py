"""predict's detections file: written as it comes, locked while it is written."""

import json
import os
import warnings

import pytest

from faster_rcnn.cli.detections_file import DetectionsFile


@pytest.mark.parametrize("ended", ["finished", "failed"])
def test_a_partial_file_renamed_before_it_is_locked_is_opened_again(tmp_path, monkeypatch, ended):
    """The next run opened the partial file, the writer then ended (its lock released,
    the file renamed detections.json, or removed on an error), and the next run locked
    what was now the writer's detections.json, or no file: it emptied it, wrote into it,
    and failed at its end on a partial file that was gone. It opens the partial file
    again, and warns of no killed run."""
    fcntl = pytest.importorskip("fcntl")
    path = tmp_path / "detections.json"
    partial = tmp_path / "detections.json.partial"
    partial.write_text('[\n{"image_id": 0}\n]\n')
    flock = fcntl.flock

    def writer_ends_first(file, operation):
        monkeypatch.setattr(fcntl, "flock", flock)
        if ended == "finished":
            os.replace(partial, path)
        else:
            partial.unlink()
        flock(file, operation)

    monkeypatch.setattr(fcntl, "flock", writer_ends_first)
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        with DetectionsFile(path) as written:
            written.write([{"image_id": 1}])
    assert [str(w.message) for w in warned] == []
    assert json.loads(path.read_text()) == [{"image_id": 1}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["detections.json"]
