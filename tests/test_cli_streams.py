"""Output whose reader has gone: a stream made reader-proof goes on, to the null device,
where a pipe's reader has exited or a terminal has hung up; other errors still raise."""

import errno
import io
import os
import pty
import sys

import pytest

from faster_rcnn.cli.streams import ReaderProof, reader_proof

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX pipes and terminals")


def pipe_without_reader():
    """A text stream on a pipe whose reading end is closed, as after `| head` exits."""
    read, write = os.pipe()
    os.close(read)
    return open(write, "w")


def hung_up_terminal():
    """A text stream on a terminal whose other end has closed (its window, ssh)."""
    master, slave = pty.openpty()
    os.close(master)
    return open(slave, "w")


@pytest.mark.parametrize("reader_gone", [pipe_without_reader, hung_up_terminal])
def test_a_stream_whose_reader_has_gone_writes_on_to_the_null_device(reader_gone):
    with reader_gone() as stream:
        with pytest.raises(OSError) as error:  # what the stream does by itself
            stream.write("a line\n")
            stream.flush()
        assert error.value.errno in (errno.EPIPE, errno.EIO)
        proof = ReaderProof(stream)
        assert proof.write("another line\n") == len("another line\n")
        proof.flush()
        assert os.path.samefile(f"/dev/fd/{stream.fileno()}", os.devnull)
        proof.write("and more\n")
        proof.flush()


class FullDisk(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_other_errors_of_a_reader_proof_stream_still_raise():
    with pytest.raises(OSError, match="No space left on device"):
        ReaderProof(FullDisk()).write("a line\n")


def test_reader_proof_replaces_the_stream_while_inside_and_puts_it_back(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stream)
    with reader_proof("stdout"):
        assert isinstance(sys.stdout, ReaderProof) and sys.stdout.stream is stream
        print("kept")
    assert sys.stdout is stream
    assert stream.getvalue() == "kept\n"
