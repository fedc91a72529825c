"""Memory available under a container's memory limit, read from cgroup files and a
``/proc/meminfo`` laid out in tmp_path: each figure is the tightest of the machine's and
every limit's."""

from __future__ import annotations

from pathlib import Path

import pytest

from faster_rcnn.host_memory import (
    MemoryLevel,
    available_fraction,
    least_available,
    memory_levels,
)

GIB = 2**30
MIB = 2**20
# v1's memory.limit_in_bytes where no limit is set (4 KiB pages).
V1_NO_LIMIT = "9223372036854771712"


def meminfo(tmp_path: Path, available_gib: float, total_gib: float = 24) -> Path:
    """A ``/proc/meminfo`` with ``available_gib`` of ``total_gib`` GiB available."""
    file = tmp_path / "meminfo"
    file.write_text(
        f"MemTotal:       {int(total_gib * GIB) // 1024} kB\n"
        "MemFree:          1000000 kB\n"
        f"MemAvailable:   {int(available_gib * GIB) // 1024} kB\n"
    )
    return file


def cgroup_v2(root: Path, cgroups: dict[str, dict[str, str]], own: str = "/") -> Path:
    """A v2 hierarchy under ``root`` with the files given per folder, and the process's
    ``/proc/self/cgroup`` naming ``own``."""
    for folder, files in cgroups.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (root / folder / name).write_text(text + "\n")
    proc = root.parent / "proc_self_cgroup"
    proc.write_text(f"0::{own}\n")
    return proc


def v2_files(limit: str, current: int, inactive_file: int | None = None) -> dict[str, str]:
    """``memory.max``, ``memory.current`` and, where given, a ``memory.stat`` with
    ``inactive_file``."""
    files = {"memory.max": limit, "memory.current": str(current)}
    if inactive_file is not None:
        files["memory.stat"] = f"anon 1000\nfile 2000\ninactive_file {inactive_file}\n"
    return files


def available_bytes(root: Path, proc: Path, host: Path) -> int | None:
    """The bytes of the level of the fake tree that has the fewest available."""
    level = least_available(root, proc, host)
    return None if level is None else level.available


def figures(tmp_path: Path, proc: Path, host: Path) -> tuple[int | None, float]:
    """The fewest bytes available and ``available_fraction`` of the fake tree."""
    root = tmp_path / "cg"
    return available_bytes(root, proc, host), available_fraction(root, proc, host)


def test_a_container_limited_to_4_gib_on_a_host_with_20_gib_available(tmp_path) -> None:
    # 4 GiB limit, 3 GiB used of which 0.5 GiB is inactive page cache: 1.5 GiB available.
    files = v2_files(str(4 * GIB), 3 * GIB, inactive_file=GIB // 2)
    proc = cgroup_v2(tmp_path / "cg", {".": files})
    assert figures(tmp_path, proc, meminfo(tmp_path, 20)) == (1536 * MIB, 0.375)


def test_active_page_cache_counts_as_available_too(tmp_path) -> None:
    # 4 GiB limit, 3.75 GiB used of which 0.5 GiB active and 0.25 GiB inactive page
    # cache (the kernel reclaims both before it kills): 1 GiB available. Counting the
    # inactive part alone (0.5 GiB, 0.125) would count as short, and trim every step.
    files = v2_files(str(4 * GIB), 3 * GIB + 3 * GIB // 4, inactive_file=GIB // 4)
    files["memory.stat"] += f"active_file {GIB // 2}\n"
    proc = cgroup_v2(tmp_path / "cg", {".": files})
    assert figures(tmp_path, proc, meminfo(tmp_path, 20)) == (GIB, 0.25)
    memory = tmp_path / "v1" / "memory"
    v1_memory(memory, str(4 * GIB), 3 * GIB + 3 * GIB // 4, GIB // 4)
    with (memory / "memory.stat").open("a") as stat:
        stat.write(f"active_file 4096\ntotal_active_file {GIB // 2}\n")
    proc = tmp_path / "proc_v1"
    proc.write_text("5:memory:/\n0::/\n")
    root = tmp_path / "v1"
    host = meminfo(tmp_path, 20)
    assert (available_bytes(root, proc, host), available_fraction(root, proc, host)) == (
        GIB,
        0.25,
    )


def test_page_cache_counts_as_used_where_memory_stat_does_not_say(tmp_path) -> None:
    proc = cgroup_v2(tmp_path / "cg", {".": v2_files(str(4 * GIB), 3 * GIB)})
    assert figures(tmp_path, proc, meminfo(tmp_path, 20)) == (GIB, 0.25)


def test_the_host_counts_where_it_is_tighter_than_the_limit(tmp_path) -> None:
    # 8 GiB limit, 2 GiB used (0.75); the host has 3 of 24 GiB available (0.125).
    proc = cgroup_v2(tmp_path / "cg", {".": v2_files(str(8 * GIB), 2 * GIB)})
    assert figures(tmp_path, proc, meminfo(tmp_path, 3)) == (3 * GIB, 0.125)


def test_the_tightest_limit_on_the_way_up_counts(tmp_path) -> None:
    cgroups = {
        ".": {},
        "kube": v2_files(str(8 * GIB), 7 * GIB + GIB // 2),  # 0.5 GiB, 1/16 available
        "kube/pod": v2_files(str(2 * GIB), GIB),  # 1 GiB, half available
        "kube/other_pod": v2_files(str(GIB // 4), GIB // 4),  # not this process's
    }
    proc = cgroup_v2(tmp_path / "cg", cgroups, own="/kube/pod")
    assert figures(tmp_path, proc, meminfo(tmp_path, 20)) == (GIB // 2, 0.0625)


def test_each_figure_is_its_own_tightest_level(tmp_path) -> None:
    # The pod: 0.5 of 1 GiB available; the node's cgroup: 4 of 64 GiB (0.0625).
    cgroups = {"node": v2_files(str(64 * GIB), 60 * GIB), "node/pod": v2_files(str(GIB), GIB // 2)}
    proc = cgroup_v2(tmp_path / "cg", cgroups, own="/node/pod")
    assert figures(tmp_path, proc, meminfo(tmp_path, 20)) == (GIB // 2, 0.0625)
    levels = memory_levels(tmp_path / "cg", proc, meminfo(tmp_path, 20))
    assert levels == [
        (20 * GIB, 24 * GIB, "MemAvailable"),
        (GIB // 2, GIB, "memory.max"),
        (4 * GIB, 64 * GIB, "memory.max"),
    ]


def test_no_limit_leaves_the_hosts_figures(tmp_path) -> None:
    proc = cgroup_v2(tmp_path / "cg", {".": v2_files("max", 3 * GIB), "a": v2_files("max", GIB)})
    assert figures(tmp_path, proc, meminfo(tmp_path, 6)) == (6 * GIB, 0.25)
    no_cgroups = tmp_path / "no_proc_file"
    assert available_bytes(tmp_path / "nothing", no_cgroups, meminfo(tmp_path, 6)) == 6 * GIB


def test_usage_over_the_limit_leaves_nothing(tmp_path) -> None:
    proc = cgroup_v2(tmp_path / "cg", {".": v2_files(str(GIB), GIB + 4096, inactive_file=0)})
    assert figures(tmp_path, proc, meminfo(tmp_path, 20)) == (0, 0.0)


@pytest.mark.parametrize(
    "files",
    [
        {"memory.max": str(GIB)},  # no memory.current
        {"memory.max": "a lot", "memory.current": "1"},
        {"memory.max": str(GIB), "memory.current": ""},
        {"memory.max": "0", "memory.current": "0"},
    ],
    ids=["no_usage", "not_a_number", "empty_usage", "zero_limit"],
)
def test_a_limit_that_cannot_be_read_leaves_the_hosts_figures(tmp_path, files) -> None:
    proc = cgroup_v2(tmp_path / "cg", {".": files})
    assert figures(tmp_path, proc, meminfo(tmp_path, 6)) == (6 * GIB, 0.25)


def test_unreadable_files_leave_the_hosts_figures(tmp_path) -> None:
    proc = cgroup_v2(tmp_path / "cg", {".": {"memory.current": str(GIB)}})
    (tmp_path / "cg" / "memory.max").mkdir()  # reading it fails, as root too
    assert figures(tmp_path, proc, meminfo(tmp_path, 6)) == (6 * GIB, 0.25)


def test_a_limit_without_the_hosts_figures_still_counts(tmp_path) -> None:
    proc = cgroup_v2(tmp_path / "cg", {".": v2_files(str(4 * GIB), GIB)})
    assert figures(tmp_path, proc, tmp_path / "no_meminfo") == (3 * GIB, 0.75)
    nothing = tmp_path / "nothing"
    assert available_bytes(nothing, proc, tmp_path / "no_meminfo") is None
    assert available_fraction(nothing, proc, tmp_path / "no_meminfo") == 1.0


def v1_memory(folder: Path, limit: str, usage: int, total_inactive_file: int) -> None:
    """A v1 ``memory`` cgroup's files in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "memory.limit_in_bytes").write_text(limit + "\n")
    (folder / "memory.usage_in_bytes").write_text(f"{usage}\n")
    # inactive_file is this cgroup's alone; usage_in_bytes counts those below it too.
    (folder / "memory.stat").write_text(
        f"cache 4096\ninactive_file 4096\ntotal_inactive_file {total_inactive_file}\n"
    )


def test_cgroup_v1_limit_of_the_processs_own_cgroup(tmp_path) -> None:
    memory = tmp_path / "cg" / "memory"
    v1_memory(memory, V1_NO_LIMIT, 20 * GIB, 0)
    v1_memory(memory / "docker" / "abc", str(2 * GIB), GIB + GIB // 2, GIB // 4)
    proc = tmp_path / "proc_self_cgroup"
    proc.write_text("5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n")
    # 2 GiB limit, 1.5 GiB used of which 0.25 GiB inactive page cache: 0.75 GiB.
    assert figures(tmp_path, proc, meminfo(tmp_path, 20)) == (768 * MIB, 0.375)


def test_cgroup_v1_container_sees_its_own_cgroup_at_the_mount(tmp_path) -> None:
    memory = tmp_path / "cg" / "memory"
    v1_memory(memory, str(GIB), 768 * MIB, 0)
    proc = tmp_path / "proc_self_cgroup"
    proc.write_text("5:memory:/docker/abc\n0::/\n")
    assert figures(tmp_path, proc, meminfo(tmp_path, 20)) == (256 * MIB, 0.25)
    v1_memory(memory, V1_NO_LIMIT, 768 * MIB, 0)
    assert figures(tmp_path, proc, meminfo(tmp_path, 6)) == (6 * GIB, 0.25)


def test_the_figures_are_read_anew_at_each_call_from_the_folders_found_once(tmp_path) -> None:
    proc = cgroup_v2(tmp_path / "cg", {".": {}, "pod": v2_files(str(4 * GIB), 3 * GIB)}, "/pod")
    assert figures(tmp_path, proc, meminfo(tmp_path, 20)) == (GIB, 0.25)
    cgroup_v2(tmp_path / "cg", {"pod": v2_files(str(4 * GIB), 2 * GIB)}, "/pod")
    assert figures(tmp_path, proc, meminfo(tmp_path, 20)) == (2 * GIB, 0.5)


@pytest.mark.parametrize(
    ("limit", "high", "expected"),
    [
        (str(8 * GIB), str(4 * GIB), (GIB, 0.25)),  # high is tighter: 1 of 4 GiB left
        ("max", str(4 * GIB), (GIB, 0.25)),  # high alone
        (str(2 * GIB), str(4 * GIB), (0, 0.0)),  # max is tighter, and all used
        (str(4 * GIB), "max", (GIB, 0.25)),  # no high
    ],
    ids=["high_below_max", "high_alone", "max_below_high", "high_is_max"],
)
def test_memory_high_is_a_limit_too(tmp_path, limit, high, expected) -> None:
    """Above memory.high the kernel throttles and reclaims hard: the tighter of max and
    high counts. 3 GiB used."""
    files = {**v2_files(limit, 3 * GIB), "memory.high": high}
    proc = cgroup_v2(tmp_path / "cg", {".": files})
    assert figures(tmp_path, proc, meminfo(tmp_path, 20)) == expected


def test_memory_high_on_the_way_up_counts(tmp_path) -> None:
    cgroups = {
        "kube": {**v2_files("max", 3 * GIB), "memory.high": str(4 * GIB)},  # 1 of 4 GiB
        "kube/pod": {**v2_files(str(2 * GIB), GIB), "memory.high": "max"},  # 1 of 2 GiB
    }
    proc = cgroup_v2(tmp_path / "cg", cgroups, own="/kube/pod")
    assert figures(tmp_path, proc, meminfo(tmp_path, 20)) == (GIB, 0.25)


def test_the_least_available_level_says_where_its_figure_comes_from(tmp_path) -> None:
    # The pod's memory.high leaves 1 of 4 GiB; the machine 6 of 24; the node's max 4 of 8.
    cgroups = {
        "node": v2_files(str(8 * GIB), 4 * GIB),
        "node/pod": {**v2_files(str(8 * GIB), 3 * GIB), "memory.high": str(4 * GIB)},
    }
    proc = cgroup_v2(tmp_path / "cg", cgroups, own="/node/pod")
    level = least_available(tmp_path / "cg", proc, meminfo(tmp_path, 6))
    assert level == MemoryLevel(GIB, 4 * GIB, "memory.high")
    assert level.available_text() == (
        "1.1 GB this container's memory limit leaves (cgroup memory.high)"
    )
    host = meminfo(tmp_path, 0.5)
    assert least_available(tmp_path / "cg", proc, host) == (GIB // 2, 24 * GIB, "MemAvailable")
    assert least_available(tmp_path / "cg", proc, host).available_text() == (
        "536.9 MB the machine has available (MemAvailable)"
    )
    assert least_available(tmp_path / "nothing", proc, tmp_path / "no_meminfo") is None


def test_a_v1_limit_is_named_by_its_file(tmp_path) -> None:
    v1_memory(tmp_path / "cg" / "memory", str(2 * GIB), GIB, 0)
    proc = tmp_path / "proc_self_cgroup"
    proc.write_text("5:memory:/\n0::/\n")
    level = least_available(tmp_path / "cg", proc, meminfo(tmp_path, 20))
    assert level == (GIB, 2 * GIB, "memory.limit_in_bytes")


def test_memory_max_is_named_where_high_is_the_same(tmp_path) -> None:
    files = {**v2_files(str(4 * GIB), 3 * GIB), "memory.high": str(4 * GIB)}
    proc = cgroup_v2(tmp_path / "cg", {".": files})
    level = least_available(tmp_path / "cg", proc, meminfo(tmp_path, 20))
    assert level == (GIB, 4 * GIB, "memory.max")
