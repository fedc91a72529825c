"""Threads lowered to a container's CPU quota, read from cgroup files laid out in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from faster_rcnn.host_cpus import USER_SETTING, cpu_quota, one_thread, threads_for_cpu_quota


def cgroup_v2(root: Path, limits: dict[str, str], own: str = "/") -> Path:
    """A v2 hierarchy under ``root`` with ``cpu.max`` per folder, and the process's
    ``/proc/self/cgroup`` naming ``own``."""
    for folder, text in limits.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / "cpu.max").write_text(text + "\n")
    proc = root.parent / "proc_self_cgroup"
    proc.write_text(f"0::{own}\n")
    return proc


@pytest.fixture
def threads():
    """Restores torch's thread count after a test that changes it."""
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


def test_a_container_limited_to_two_and_a_half_cpus(tmp_path) -> None:
    proc = cgroup_v2(tmp_path / "cg", {".": "250000 100000"})
    assert cpu_quota(tmp_path / "cg", proc) == 2.5


def test_no_limit_is_none(tmp_path) -> None:
    proc = cgroup_v2(tmp_path / "cg", {".": "max 100000"})
    assert cpu_quota(tmp_path / "cg", proc) is None
    assert cpu_quota(tmp_path / "nothing", tmp_path / "no_proc_file") is None


def test_the_smallest_quota_on_the_way_up_counts(tmp_path) -> None:
    limits = {".": "max 100000", "kube": "100000 50000", "kube/pod": "300000 100000"}
    proc = cgroup_v2(tmp_path / "cg", limits, own="/kube/pod")
    assert cpu_quota(tmp_path / "cg", proc) == 2.0


def test_cgroup_v1_quota(tmp_path) -> None:
    cpu = tmp_path / "cg" / "cpu"
    cpu.mkdir(parents=True)
    (cpu / "cpu.cfs_quota_us").write_text("150000\n")
    (cpu / "cpu.cfs_period_us").write_text("100000\n")
    assert cpu_quota(tmp_path / "cg", tmp_path / "no_proc_file") == 1.5
    (cpu / "cpu.cfs_quota_us").write_text("-1\n")
    assert cpu_quota(tmp_path / "cg", tmp_path / "no_proc_file") is None


def test_cgroup_v1_quota_of_the_processs_own_cgroup(tmp_path) -> None:
    own = tmp_path / "cg" / "cpu" / "docker" / "abc"
    own.mkdir(parents=True)
    (own / "cpu.cfs_quota_us").write_text("300000\n")
    (own / "cpu.cfs_period_us").write_text("100000\n")
    proc = tmp_path / "proc_self_cgroup"
    proc.write_text("5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n")
    assert cpu_quota(tmp_path / "cg", proc) == 3.0
    # A container sees its own cgroup at the mount, under its host's path.
    (tmp_path / "cg" / "cpu" / "cpu.cfs_quota_us").write_text("100000\n")
    (tmp_path / "cg" / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cpu_quota(tmp_path / "cg", proc) == 1.0


def test_threads_drop_to_the_quotas_whole_cpus(tmp_path, monkeypatch, threads) -> None:
    monkeypatch.delenv(USER_SETTING, raising=False)
    torch.set_num_threads(4)
    proc = cgroup_v2(tmp_path / "cg", {".": "250000 100000"})
    limit = threads_for_cpu_quota(tmp_path / "cg", proc)
    assert limit is not None and (limit.threads, limit.quota, limit.before) == (2, 2.5, 4)
    assert torch.get_num_threads() == 2
    assert limit.line() == (
        f"threads: 2, the CPU quota's whole CPUs (2.5), not 4 ({USER_SETTING} sets them)"
    )


def test_a_fraction_of_a_cpu_still_gets_one_thread(tmp_path, monkeypatch, threads) -> None:
    monkeypatch.delenv(USER_SETTING, raising=False)
    torch.set_num_threads(2)
    proc = cgroup_v2(tmp_path / "cg", {".": "50000 100000"})
    assert threads_for_cpu_quota(tmp_path / "cg", proc).threads == 1
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize("quota", ["400000 100000", "max 100000"])
def test_a_quota_at_or_above_the_threads_changes_nothing(
    tmp_path, monkeypatch, threads, quota
) -> None:
    monkeypatch.delenv(USER_SETTING, raising=False)
    torch.set_num_threads(2)
    proc = cgroup_v2(tmp_path / "cg", {".": quota})
    assert threads_for_cpu_quota(tmp_path / "cg", proc) is None
    assert torch.get_num_threads() == 2


def test_the_users_thread_count_is_kept(tmp_path, monkeypatch, threads) -> None:
    monkeypatch.setenv(USER_SETTING, "3")
    torch.set_num_threads(3)
    proc = cgroup_v2(tmp_path / "cg", {".": "100000 100000"})
    assert threads_for_cpu_quota(tmp_path / "cg", proc) is None
    assert torch.get_num_threads() == 3


def test_one_thread_inside_and_the_count_back_after_an_error(threads) -> None:
    torch.set_num_threads(2)
    inside = []
    with pytest.raises(ValueError, match="bad box"), one_thread():
        inside.append(torch.get_num_threads())
        raise ValueError("bad box")
    assert inside == [1] and torch.get_num_threads() == 2
