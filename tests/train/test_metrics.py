"""The metrics file and the TensorBoard writer behind it."""

import errno
import json
import os
import shutil
import stat
import sys
import types
from pathlib import Path

import pytest

from faster_rcnn.train.metrics import MetricsLogger, drop_records, read_metrics


def record(stage, step, loss=1.0):
    return {
        "stage": stage,
        "step": step,
        "lr": 0.01,
        "losses": {"loss": loss},
        "seconds": 0.5,
        "images_per_s": 4.0,
    }


def test_logger_appends_one_json_line_per_record(tmp_path):
    path = tmp_path / "run" / "metrics.jsonl"
    with MetricsLogger(path) as logger:
        logger.log(record("joint", 0))
    with MetricsLogger(path) as logger:
        logger.log(record("joint", 1))
    lines = path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [record("joint", 0), record("joint", 1)]


@pytest.mark.skipif(
    not (os.path.exists("/dev/full") and stat.S_ISCHR(os.stat("/dev/full").st_mode)),
    reason="no /dev/full device here (a link to it would make a file)",
)
def test_a_full_disk_is_an_os_error_naming_the_metrics_file(tmp_path):
    """Python's error of a refused write names no file: the command line said "[Errno 28]
    No space left on device", and closing the file raised it again."""
    path = tmp_path / "metrics.jsonl"
    path.symlink_to("/dev/full")  # a disk always full
    with pytest.raises(OSError) as error, MetricsLogger(path) as logger:
        logger.log(record("joint", 0))
    assert (error.value.errno, error.value.filename) == (errno.ENOSPC, str(path))
    assert error.value.strerror == os.strerror(errno.ENOSPC)


def test_a_full_disk_dropping_records_names_the_metrics_file_and_keeps_it(tmp_path, monkeypatch):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(record("joint", step)) + "\n" for step in range(3)))
    before = path.read_text()

    def full_disk(self, data, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as a write's: no file named

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(OSError) as error:
        drop_records(path, "joint", 1)
    assert (error.value.errno, error.value.filename) == (errno.ENOSPC, str(path))
    assert os.listdir(tmp_path) == ["metrics.jsonl"]
    assert path.read_text() == before


def test_a_metrics_file_deleted_mid_run_goes_on_in_a_new_one(tmp_path):
    """With the run folder deleted, the records went on into the deleted file, and the
    run, its checkpoints written anew, ended with none."""
    path = tmp_path / "run" / "metrics.jsonl"
    with MetricsLogger(path) as logger:
        logger.log(record("joint", 0))
        shutil.rmtree(tmp_path / "run")
        with pytest.warns(UserWarning, match=rf"^{path} was deleted during the run: its "):
            logger.log(record("joint", 1))
        logger.log(record("joint", 2))
    assert read_metrics(path) == [record("joint", 1), record("joint", 2)]


def test_logger_writes_tensorboard_scalars(tmp_path, monkeypatch):
    scalars = []

    class SummaryWriter:
        def __init__(self, log_dir):
            self.log_dir = log_dir

        def add_scalar(self, tag, value, step):
            scalars.append((tag, value, step))

        def close(self):
            scalars.append("closed")

    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = SummaryWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    with MetricsLogger(None, tmp_path / "tb") as logger:
        logger.log(record("rpn1", 7, loss=2.5))
        logger.log({**record("rpn1", 8, loss=2.0), "grad_norm": 6.5})
        logger.log({**record("rpn1", 9, loss=2.0), "grad_norm": None})  # a skipped step
    assert scalars == [
        ("rpn1/loss", 2.5, 7),
        ("rpn1/lr", 0.01, 7),
        ("rpn1/images_per_s", 4.0, 7),
        ("rpn1/loss", 2.0, 8),
        ("rpn1/lr", 0.01, 8),
        ("rpn1/grad_norm", 6.5, 8),
        ("rpn1/images_per_s", 4.0, 8),
        ("rpn1/loss", 2.0, 9),
        ("rpn1/lr", 0.01, 9),
        ("rpn1/images_per_s", 4.0, 9),
        "closed",
    ]


def test_drop_records_keeps_other_stages_and_earlier_steps(tmp_path):
    path = tmp_path / "metrics.jsonl"
    records = [record("rpn1", 0), record("rpn1", 1), record("joint", 0), record("joint", 1)]
    records.append(record("joint", 2))
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    drop_records(path, "joint", 1)
    assert read_metrics(path) == records[:3]
    assert list(tmp_path.iterdir()) == [path]


def test_a_torn_last_line_is_dropped_with_a_warning_and_a_bad_middle_line_reported(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps(record("joint", 0)) + '\n{"stage": "jo')
    assert read_metrics(path) == [record("joint", 0)]
    said = rf"^{path}, line 2: a record cut off mid-write \(the run was killed\) is dropped$"
    with pytest.warns(UserWarning, match=said):
        drop_records(path, "joint", 5)
    assert path.read_text() == json.dumps(record("joint", 0)) + "\n"

    path.write_text('{"stage": \n' + json.dumps(record("joint", 0)) + "\n")
    with pytest.raises(ValueError, match="line 1"):
        read_metrics(path)


NOT_A_RECORD = "not an object with a string 'stage' and an integer 'step'"


@pytest.mark.parametrize("line", [2, 3])
@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (b"5", NOT_A_RECORD),
        (b'{"stage": "joint", "lr": 0.01}', NOT_A_RECORD),
        (
            b'{"stage": "jo\xffnt"}',
            "'utf-8' codec can't decode byte 0xff in position 13: invalid start byte",
        ),
    ],
    ids=["a number", "no step", "a bad byte"],
)
def test_a_damaged_line_ended_by_its_newline_is_one_error_naming_the_file_and_line(
    tmp_path, line, damage, why
):
    """Damage after the write (not a crash's cut: a newline ends the line) was an
    AttributeError's traceback, a decoding error naming no file, or a line kept or
    dropped without a word."""
    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps(record("joint", step)).encode() for step in range(3)]
    lines[line - 1] = damage
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(ValueError) as error:
        drop_records(path, "joint", 1)
    assert str(error.value) == f"{path}, line {line}: not a JSON record ({why})"
