"""Patterns predict expands itself: ``**`` reads every depth, as Python's glob reads it."""

import glob
from pathlib import Path

import pytest

from faster_rcnn.cli.image_patterns import named_by_pattern, pattern_images
from faster_rcnn.cli.predict import image_paths

TREE = [
    "top.jpg",
    "a/img.jpg",
    "a/deep/er/x.jpg",
    "a/notes.txt",
    "a-b/img.png",
    "b/img.jpg",
    ".cache/old.jpg",
    "b/.hidden.jpg",
]


def make_tree(root: Path) -> Path:
    for name in TREE:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")
    return root


def test_a_double_star_reads_image_files_at_every_depth_sorted_and_each_once(tmp_path):
    """``photos/**/*.jpg`` read as ``photos/*/*.jpg``: the files one folder down alone,
    not those beside the pattern's folder nor deeper. A hidden folder or file is no
    match, as in glob; the order is the tree's, a folder's files and subfolders together."""
    root = make_tree(tmp_path / "photos")
    assert pattern_images(root / "**" / "*.jpg") == [
        root / "a/deep/er/x.jpg",
        root / "a/img.jpg",
        root / "b/img.jpg",
        root / "top.jpg",
    ]
    assert pattern_images(root / "**" / "*") == [
        root / "a/deep/er/x.jpg",
        root / "a/img.jpg",
        root / "a-b/img.png",
        root / "b/img.jpg",
        root / "top.jpg",
    ]
    assert pattern_images(root / "a" / "**") == [root / "a/deep/er/x.jpg", root / "a/img.jpg"]
    named = [root / "**" / "img.*", root / "a" / "img.jpg", root / "*" / "img.jpg"]
    assert image_paths(named) == [root / "a/img.jpg", root / "a-b/img.png", root / "b/img.jpg"]
    with pytest.raises(FileNotFoundError, match=r"no image file matches .*\*\*/\*\.gif$"):
        pattern_images(root / "**" / "*.gif")


@pytest.mark.parametrize(
    "pattern",
    ["**/*", "**/*.jpg", "a/**/*.jpg", "*/img.*", "**/img.jpg", "**", "a/**", "[ab]/*", ".*/*"],
)
def test_a_pattern_names_the_files_glob_finds_for_it(tmp_path, monkeypatch, pattern):
    """Whether predict would read a picture back is asked of files not written yet: the
    answer is glob's for the files that are there, hidden ones, deeper ones and those of
    no image suffix too, the pattern relative to the working folder or not."""
    root = make_tree(tmp_path / "photos").resolve()
    files = sorted(path for path in root.rglob("*") if path.is_file())
    found = {Path(p) for p in glob.glob(str(root / pattern), recursive=True)}
    expected = [file for file in files if file in found]
    assert expected
    assert named_by_pattern(root / pattern, files) == expected
    monkeypatch.chdir(root / "a")
    assert named_by_pattern(Path("..") / pattern, files) == expected


def test_the_pattern_a_folders_warning_names_reads_its_subfolders_whatever_its_name(tmp_path):
    """A folder named ``shots [1]``: the warning's ``shots [1]/**/*`` read ``[1]`` as a
    set of characters, and named no image; its wildcards are escaped as glob escapes."""
    folder = make_tree(tmp_path / "shots [1]")
    with pytest.warns(UserWarning) as warned:
        images = image_paths([folder])
    assert images == [folder / "top.jpg"]
    pattern = Path(str(warned[0].message).split('"')[1])
    assert pattern_images(pattern) == [
        folder / "a/deep/er/x.jpg",
        folder / "a/img.jpg",
        folder / "a-b/img.png",
        folder / "b/img.jpg",
        folder / "top.jpg",
    ]
    assert named_by_pattern(pattern, [folder.resolve() / "b" / "out.png"]) == [
        folder.resolve() / "b" / "out.png"
    ]
