"""This process's cgroup folders, found once per process from a ``/proc/self/cgroup``
laid out in tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from faster_rcnn.cgroups import forget_cgroup_folders, own_cgroup_folders, read_text


def proc_self_cgroup(tmp_path: Path, own: str) -> Path:
    """A ``/proc/self/cgroup`` naming the v2 cgroup ``own``."""
    proc = tmp_path / "proc_self_cgroup"
    proc.write_text(f"0::{own}\n")
    return proc


def test_the_folders_are_found_once_until_forgotten(tmp_path) -> None:
    root = tmp_path / "cg"
    proc = proc_self_cgroup(tmp_path, "/kube/a")
    expected = (root / "kube" / "a", root / "kube", root)
    assert own_cgroup_folders("memory", root, proc).v2 == expected
    proc_self_cgroup(tmp_path, "/kube/b")
    assert own_cgroup_folders("memory", root, proc).v2 == expected
    forget_cgroup_folders()
    assert own_cgroup_folders("memory", root, proc).v2 == (root / "kube" / "b", *expected[1:])


def test_each_controller_has_its_own_v1_folders(tmp_path) -> None:
    root = tmp_path / "cg"
    proc = tmp_path / "proc_self_cgroup"
    proc.write_text("5:memory:/docker/abc\n4:cpu,cpuacct:/\n0::/\n")
    assert own_cgroup_folders("cpu", root, proc).v1 == (root / "cpu",)
    memory = root / "memory"
    assert own_cgroup_folders("memory", root, proc).v1 == (
        memory / "docker/abc",
        memory / "docker",
        memory,
    )


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks a process")
def test_a_forked_process_finds_its_own_folders(tmp_path) -> None:
    """A DataLoader worker forked after its parent found the folders reads
    ``/proc/self/cgroup`` itself (here rewritten after the parent's lookup)."""
    root = tmp_path / "cg"
    proc = proc_self_cgroup(tmp_path, "/a")
    assert own_cgroup_folders("memory", root, proc).v2 == (root / "a", root)
    proc_self_cgroup(tmp_path, "/b")
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the forked process: writes the folder it finds, and ends
        os.write(write, str(own_cgroup_folders("memory", root, proc).v2[0]).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        assert pipe.read() == str(root / "b")
    assert os.waitpid(child, 0)[1] == 0
    assert own_cgroup_folders("memory", root, proc).v2 == (root / "a", root)


def test_read_text_reads_a_whole_file_and_none_for_what_cannot_be_read(tmp_path) -> None:
    long = tmp_path / "memory.stat"
    long.write_text("".join(f"figure_{i} {i}\n" for i in range(10_000)))  # 167,780 bytes
    assert read_text(long) == long.read_text().strip()
    assert len(read_text(long)) == 167_779
    (tmp_path / "memory.max").write_bytes(b"\xff\xfe 1024\n")  # not UTF-8
    assert read_text(tmp_path / "memory.max") is None
    assert read_text(tmp_path) is None  # a folder
    assert read_text(tmp_path / "missing") is None
