"""Open a dataset by path, telling its layout from the files it holds.

:func:`find_layout` says what a path holds - its format and its splits - and
:func:`open_dataset` opens one split of it. Layouts, in the order they are tried:

- ``"synthetic"`` or ``"synthetic:N"``: :class:`SyntheticShapes` of ``N`` images
  (default 2000 for ``train``, 200 otherwise), seed 0 for ``train``, 1 for the others.
- ``"slides"`` or ``"slides:N"``: :class:`SyntheticSlides`, generated microscope slides
  with a small rare class (default 300 images for ``train``, 100 otherwise; seeds as
  above).
- a ``.yaml`` file: an Ultralytics data YAML (:mod:`.ultralytics`).
- a ``.xml`` file of CVAT's "CVAT for images 1.1" export, told by its content
  (:func:`.is_cvat_file`): a split per ``subset`` of its images, or none (:mod:`.cvat`).
- a ``.json`` file of VGG Image Annotator (VIA), told by its content (an export or a
  project file; :func:`.is_via_file`): that file, its images beside it (:mod:`.via`).
- a ``.json`` file of CreateML, told by its name or content (:func:`.is_createml_file`):
  that file, its images beside it (:mod:`.createml`).
- any other ``.json`` file: COCO, that file; images looked for in ``<json stem>/`` (less
  ``instances_``), ``<split>/`` where the stem starts with its name (``train2017``),
  ``images/<json stem>/`` (CVAT's ``images/default/`` beside
  ``annotations/instances_default.json``) and ``images/`` next to its ``annotations/``
  folder (or next to the file), then in the file's own folder.
- an ``obj.data`` file: Darknet's layout, of its folder (below).
- a ``.txt`` file of YOLO Keras TXT, named ``_annotations.txt`` or whose first line with
  more than a path (among its first 20) is a path and ``x1,y1,x2,y2,class_id`` boxes
  (:func:`.is_keras_txt`), its class names in the ``_classes.txt`` or ``classes.txt``
  beside it (:mod:`.keras_txt`).
- a ``.csv`` file: TensorFlow Object Detection CSV, that file, its images beside it; or,
  where its first row is a box, not a header, keras-retinanet's CSV, its images where
  its paths say, in the class order of a ``classes.csv`` beside it (:mod:`.csv_boxes`).
- a folder with ``Annotations/`` and ``ImageSets/``: Pascal VOC, a split per
  ``ImageSets/Main/<split>.txt`` (VOC's per-class lists such as ``dog_train.txt``
  are not splits); where the one list is ``default.txt`` (CVAT's export without
  subsets), its images without splits.
- a folder with ``annotations/*.json`` (COCO's own layout, CVAT's, Label Studio's): a
  split per ``instances_<split>.json``, a single one too (``train2017`` alone), COCO's
  other files beside them (``captions_*.json``, ``person_keypoints_*.json``) left out;
  else one file without splits (CVAT's ``instances_default.json``, its export without
  subsets); images as for a ``.json`` file.
- a folder holding ``annotations.xml`` of CVAT for images (CVAT's export, its images in
  ``images/`` or ``images/<subset>/``, or the file beside its images): that file (above).
- a folder holding one ``.json`` file, of VIA: that file without splits (:mod:`.via`).
- a folder whose subfolders hold one VIA ``.json`` each, beside their images (the
  Mask R-CNN balloon dataset's ``train/via_region_data.json``, ``val/``): a split per
  subfolder, per one whose file has no image beside it, and per empty subfolder named
  as a split is (below).
- a folder holding Roboflow's ``_annotations.createml.json``, or one ``.json`` file
  that is CreateML's (a list of images with ``image`` and ``annotations``), beside its
  images: that file without splits (:mod:`.createml`).
- a folder whose subfolders hold such a CreateML file beside their images (Roboflow's
  "CreateML JSON" export: ``train/``, ``valid/``, ``test/``): a split per subfolder, per
  one whose file has no image beside it, and per empty subfolder named as a split is
  (below). Told before Roboflow's COCO folders, which would take its one ``.json``.
- a folder with subfolders of LabelMe ``.json`` files (``train/``, ``valid/``,
  ``test/``), two or more, or one named as a split is (its files hold ``shapes`` and
  ``imagePath``; see :mod:`.labelme`): a split per subfolder, and per empty subfolder
  named as a split is (below). Told by their content before Roboflow's COCO folders,
  which a split folder holding one LabelMe file would look like.
- a folder whose subfolders each hold one COCO ``.json`` and their images (Roboflow's
  ``train/_annotations.coco.json``, ``valid/``, ``test/``): a split per subfolder, per
  subfolder whose one ``.json`` is named as theirs but holds no image, and per empty
  subfolder named as a split is (below).
- a folder with two or more subfolders that each hold VOC ``.xml`` files beside their
  images (Roboflow's "Pascal VOC" export: ``train/``, ``valid/``, ``test/``), or one
  such subfolder named as a split is (``valid/`` alone): a split per subfolder, each
  image looked for in its own split's folder only, per subfolder of ``.xml`` files
  beside them that holds no image, and per empty subfolder named as a split is (below).
- a folder holding ``_annotations.csv`` beside its images: TensorFlow Object Detection
  CSV, that file without splits (:mod:`.csv_boxes`).
- a folder whose subfolders hold ``_annotations.csv`` beside their images (Roboflow's
  "Tensorflow Object Detection CSV" export: ``train/``, ``valid/``, ``test/``): a split
  per subfolder, per one whose file has no image beside it, and per empty subfolder
  named as a split is (below).
- a folder holding ``_annotations.txt`` (and ``_classes.txt``) beside its images: YOLO
  Keras TXT, that file without splits; a folder whose subfolders hold them (Roboflow's
  "YOLO Keras TXT" export: ``train/``, ``valid/``, ``test/``): a split per subfolder, as
  for the CSV export (:mod:`.keras_txt`). Told by those names, never by a ``.txt`` of
  YOLO's.
- a folder holding keras-retinanet's class mapping, ``classes.csv`` (in any case), beside
  its CSV files of boxes: as the README of keras-retinanet names them, one
  (``annotations.csv``) without splits, or a split per file by its name (``train.csv``,
  ``val.csv``, ``test.csv``; ``train_annotations.csv``, which ``train`` finds); a CSV
  with a header beside them (a Kaggle ``sample_submission.csv``) is left out with a note.
- a folder with ``data.yaml`` (or one other ``.yaml`` with ``names``): Ultralytics. One
  that names no ``train`` split and no split with an image (another dataset's, or one
  whose folders were moved) names nothing to train on: it is passed over, with a
  warning, for a layout after it that the folder holds, and refused where there is none.
  One that names ``train`` is the dataset's own description: never passed over, a
  ``train`` folder not there or empty is refused naming it.
- a folder with ``obj.data``: YOLO in Darknet's layout (CVAT's "YOLO 1.1"), a split per
  list it names (``train``, ``valid``; see :mod:`.darknet`).
- a folder with ``labels/``: YOLO, a split per ``images/<split>/`` folder, or none when
  ``images/`` holds the files directly.
- a folder of VOC ``.xml`` files, or with one subfolder of them (LabelImg; see
  :mod:`.voc_folder`). Where it holds LabelImg's YOLO files too (below), they are not
  read, with a warning saying how to read them instead.
- a folder of images with their YOLO ``.txt`` files and ``classes.txt`` beside them
  (LabelImg's YOLO format; see :class:`.YOLOFolder`).
- a folder of LabelMe ``.json`` files, beside their images or apart from them (each
  file's ``imagePath``), without splits; one such file too, told from a COCO file by its
  content (:mod:`.labelme`).
- a folder holding one ``.json`` file: COCO, that file (Label Studio).

Split names need not match exactly: ``train`` finds ``train2017`` or ``Train``, ``val``
finds ``valid``, ``val2017`` or ``Validation`` (CVAT's subsets), when just one split
fits. A layout without splits gives all its images for any split; hold part out with
:mod:`.holdout`. File suffixes are matched in any case (``.JSON``, ``.YAML``, VOC's
``train.TXT``), as files copied from Windows may have them; the names the tools write
in one case (``data.yaml``, ``obj.data``, ``classes.txt``, ``Annotations/``) as written.

A split other than the one ``train`` finds that holds no image is left out, with a note
that says so as opening it would (``<file>: the test split holds no image (<detail>)``,
:func:`.empty_split_message`): an empty ``ImageSets/Main/test.txt``, an
``instances_test.json`` or Roboflow ``_annotations.coco.json`` whose ``images`` list is
empty or none of whose images is there (some missing, opening the split leaves them
out), a Roboflow VOC ``test/`` folder of ``.xml`` files without their images, a YOLO
``images/test/`` folder or Darknet list without an image, a data YAML's split whose
folders are not there or hold no image, an empty Roboflow ``test/`` folder, a CVAT
subset none of whose images is there. Training would join it, and evaluation score
nothing. The split ``train`` finds is kept whatever it holds, for opening it to say what
is wrong.
"""

from __future__ import annotations

import shlex
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..counted import counted
from .class_mapping import class_mapping_in
from .class_order import InClassOrder, takes_class_order
from .coco import EMPTY_IMAGES_LIST, COCODetection, listed_image_names
from .createml import ANNOTATIONS_FILE as CREATEML_FILE
from .createml import CREATEML_FORMAT, CreateMLDetection, is_createml_file
from .csv_boxes import ANNOTATIONS_FILE, CSVDetection, is_retinanet_csv
from .cvat import (
    ANNOTATIONS_XML,
    CVAT_FORMAT,
    CVATDetection,
    is_cvat_file,
    read_cvat_file,
    subset_without_images,
)
from .darknet import DATA_FILE, DarknetYOLO, darknet_path, darknet_splits, read_obj_data
from .dataset import (
    NO_IMAGE_BESIDE,
    DetectionDataset,
    empty_split_message,
    files_with_suffix,
    first_few,
    holds_images,
    image_files_in,
    read_text,
)
from .keras_txt import ANNOTATIONS_FILE as KERAS_TXT_FILE
from .keras_txt import KERAS_TXT_FORMAT, KerasTXTDetection, is_keras_txt
from .labelme import LabelMeFolder, holds_labelme_json
from .slides import SyntheticSlides
from .synthetic import SyntheticShapes
from .ultralytics import UltralyticsYOLO, read_data_yaml, unusable_split, yaml_splits
from .via import VIA_FORMAT, VIADetection, is_via_file
from .voc import VOCDetection, split_list
from .voc_folder import VOCFolder, holds_voc_xml, without_their_images
from .yolo import NAMES_FILES, NO_IMAGE_FILE, YOLODetection, YOLOFolder

# Generated images: validation and test share a seed, training has its own.
SYNTHETIC_SEEDS = {"train": 0, "val": 1, "test": 1}
SYNTHETIC_SIZES = {"train": 2000, "val": 200, "test": 200}
SLIDES_SIZES = {"train": 300, "val": 100, "test": 100}
# The one image list of CVAT's Pascal VOC export without subsets: not a split.
CVAT_NO_SUBSET = "default"
# What ``faster-rcnn data`` calls the layout of :mod:`.csv_boxes`.
CSV_FORMAT = "TensorFlow Object Detection CSV"
# ... and of a CSV of boxes without a header.
RETINANET_CSV_FORMAT = "keras-retinanet CSV"
# What ``faster-rcnn data`` calls the layout of :mod:`.labelme`.
LABELME_FORMAT = "LabelMe"
# The prefix of COCO's detection annotation files, ``instances_<split>.json``.
INSTANCES = "instances_"
# COCO's annotation files of its other tasks (captions, person keypoints, panoptic and
# stuff segmentation; the image lists of its test splits), found beside its instances.
COCO_OTHER_TASKS = ("captions_", "person_keypoints_", "panoptic_", "stuff_", "image_info_")
# Other names the exporters give the usual splits.
SPLIT_ALIASES = {"val": ("valid", "validation"), "test": ("testing",), "train": ("training",)}

Opener = Callable[[str, Sequence[str] | None], DetectionDataset]
# The generated datasets, by name: what makes one and its default size per split.
GENERATED: dict[str, tuple[Callable[..., DetectionDataset], dict[str, int]]] = {
    "synthetic": (SyntheticShapes, SYNTHETIC_SIZES),
    "slides": (SyntheticSlides, SLIDES_SIZES),
}


def is_generated(data: str | Path) -> bool:
    """Whether ``data`` names a generated dataset (``"synthetic:100"``, ``"slides"``)."""
    return str(data).partition(":")[0] in GENERATED


class NoSplitWithImage(ValueError):
    """A layout none of whose splits holds an image (:func:`_without_unusable`)."""


class UnknownSplit(ValueError):
    """A split name that no split of a layout fits, or more than one (:meth:`DatasetLayout.
    resolve`).

    The splits are listed in words, not as a Python list: ``"data (YOLO) has the splits
    train, val; none fits 'test'"``, ``"... has the split train; ..."``.

    Attributes:
        split: the name asked for, for a caller that took it as a flag (``--split``).
        flag_reason: the message as such a caller words it after the flag, which names
            the split (``"data (YOLO) has the splits train, val; none fits"``).
    """

    def __init__(self, path: str, format: str, splits: Sequence[str], split: str, said: str):
        plural = "s" if len(splits) != 1 else ""
        where = f"{path} ({format}) has the split{plural} {', '.join(splits)}"
        super().__init__(f"{where}; {said.replace(' fits', f' fits {split!r}')}")
        self.split = split
        self.flag_reason = f"{where}; {said}"


class UnusableDataYAML(ValueError):
    """A data YAML in a folder that names no ``train`` split and no split with an image:
    :func:`find_layout` reads a layout beside it instead, where the folder holds one."""


@dataclass(frozen=True)
class DatasetLayout:
    """What a dataset path holds.

    Attributes:
        path: the path as given.
        format: e.g. ``"Pascal VOC"``, ``"COCO"``, ``"YOLO (Ultralytics YAML)"``.
        splits: the split names; empty when the dataset has none.
        opener: ``opener(split, class_names)`` opens a split (any name when there are no
            splits).
        note: what of the path the layout leaves out, as ``faster-rcnn data`` says it;
            ``None`` where it reads everything.
        left_out: the splits left out for holding no image, each with why (naming its
            file), for the error of a split asked for by name.
    """

    path: str
    format: str
    splits: tuple[str, ...]
    opener: Opener
    note: str | None = None
    left_out: Mapping[str, str] = field(default_factory=dict)

    def resolve(self, split: str) -> str:
        """The split ``split`` names: itself, or the one split it is the start of or an
        alias of, in any case (``train`` -> ``train2017``, ``val`` -> ``valid``, CVAT's
        ``Validation``).

        Raises:
            ValueError: no split, or several, fit.
        """
        if not self.splits or split in self.splits:
            return split
        fits = _fitting(split, self.splits)
        if len(fits) != 1:
            gone = [self.left_out[name] for name in _fitting(split, tuple(self.left_out))]
            why = f" ({'; '.join(gone)}: left out)" if gone and not fits else ""
            said = f"{'none' if not fits else 'more than one'} fits{why}"
            raise UnknownSplit(self.path, self.format, self.splits, split, said)
        return fits[0]

    def open(
        self,
        split: str,
        class_names: Sequence[str] | None = None,
        append_unknown: bool = False,
    ) -> DetectionDataset:
        """The split ``split`` (see :meth:`resolve`).

        Args:
            class_names: the class order of the labels. A split whose own classes are
                among them, in another order or some of them missing (a COCO file lists
                its own), is renumbered to it by name (:class:`InClassOrder`).
            append_unknown: a class of the split's that ``class_names`` lacks follows
                them, in the split's order, instead of being refused (``evaluate``
                scores the classes a model was not trained on as never found).

        Raises:
            ValueError: the split has a class that ``class_names`` lacks (unless
                ``append_unknown``), or a class name twice.
        """
        named = self.resolve(split)  # as the data names it: Roboflow's valid for val
        dataset = self.opener(named, None if append_unknown else class_names)
        source = f"{self.path} ({named})"
        warn_of_look_alike_classes(dataset.class_names, source)
        if class_names is None or tuple(class_names) == dataset.class_names:
            return dataset
        unknown = [name for name in dataset.class_names if name not in class_names]
        if append_unknown:
            class_names, unknown = [*class_names, *dict.fromkeys(unknown)], []
        if not takes_class_order(dataset.class_names, class_names):
            why = f"{unknown} not among {list(class_names)}" if unknown else "a name twice"
            raise ValueError(f"{source} has classes {list(dataset.class_names)}: {why}")
        return InClassOrder(dataset, class_names)


# What tells a layout in a folder: ``None`` where it is not that layout.
Finder = Callable[[Path], DatasetLayout | None]


def _fitting(split: str, splits: Sequence[str]) -> list[str]:
    """The ``splits`` whose name starts with ``split`` or an alias of it, in any case."""
    names = (split.lower(), *SPLIT_ALIASES.get(split.lower(), ()))
    return [s for s in splits if any(s.lower().startswith(name) for name in names)]


def _without_unusable(
    layout: DatasetLayout, unusable: Callable[[str], str | None]
) -> DatasetLayout:
    """``layout`` less the splits that hold no image, ``unusable(split)`` saying why as
    opening it would (:func:`empty_split_message`; ``None``: it holds some), with a note
    naming them. The split ``train`` finds is
    kept whatever it holds: opening it says what is wrong, where a note would leave
    ``train`` asking for a split.

    Raises:
        NoSplitWithImage: no split is left, naming why of each.
    """
    trained = _split_train_finds(layout)
    left_out = {
        split: why
        for split in layout.splits
        if split != trained and (why := unusable(split)) is not None
    }
    if not left_out:
        return layout
    said = "; ".join(left_out.values())
    kept = tuple(split for split in layout.splits if split not in left_out)
    if not kept:
        raise NoSplitWithImage(
            f"{layout.path} ({layout.format}) has no split with an image: {said}"
        )
    note = "; ".join(text for text in (layout.note, f"{said}: left out") if text)
    return replace(layout, splits=kept, note=note, left_out=left_out)


def _split_train_finds(layout: DatasetLayout) -> str | None:
    """The split ``layout.resolve("train")`` gives; ``None`` where none fits."""
    try:
        return layout.resolve("train")
    except ValueError:
        return None


def _lists_no_image(file: Path, split: str) -> str | None:
    """``"<file>: the <split> split holds no image"`` where the list ``file`` (an image a
    line) is there and empty; else ``None`` (one that is not there or cannot be read,
    opening names)."""
    try:
        empty = not read_text(file).strip()
    except (OSError, ValueError):
        return None
    return empty_split_message(file, split) if empty else None


def _coco_without_images(file: Path, folders: Sequence[Path], split: str) -> str | None:
    """Why the COCO ``file``, the split ``split``, gives no image
    (:func:`empty_split_message`): its ``images`` list is empty, or none of the images it
    lists is in ``folders``, where the reader looks for them; ``None`` where one is
    (opening leaves out those missing), or where ``file`` cannot be read.

    An image folder of the split's own beside ``annotations/`` (COCO's ``val2017/``)
    that holds an image settles it unread: parsing is slow (2.6 s for 50,000 images), and
    opening the split reads the file anyway, naming what is wrong. A file that lies with
    its images (Roboflow's, small) is read: an image there may be one it does not list."""
    own = [folder for folder in folders if folder != file.parent and folder.is_dir()]
    if any(holds_images(folder) for folder in own):
        return None
    names = listed_image_names(file)
    if names is None:
        return None
    if not names:
        return empty_split_message(file, split, EMPTY_IMAGES_LIST)
    if any((folder / name).is_file() for name in names for folder in folders):
        return None
    places = ", ".join(map(str, folders[:-1])) + " or " * (len(folders) > 1) + str(folders[-1])
    listed = f"it lists {counted(len(names), 'image')}, none of them in {places}"
    return empty_split_message(file, split, listed)


def open_dataset(
    path: str | Path, split: str = "train", class_names: Sequence[str] | None = None
) -> DetectionDataset:
    """The ``split`` of the dataset at ``path``, in whichever layout it is (see the module).

    Args:
        path: what to open.
        split: which part of it (any, for a dataset without splits).
        class_names: for VOC, the class order to use (pass the training classes when
            opening another split); for the other formats, checked against theirs.

    Raises:
        FileNotFoundError: ``path`` or a file it needs does not exist (an image that is
            not there is left out with a warning, :func:`.images_there`).
        ValueError: the layout cannot be told, no split fits, ``class_names`` differ, or
            no image of the split is there.
    """
    return find_layout(path).open(split, class_names)


def find_layout(path: str | Path) -> DatasetLayout:
    """What ``path`` holds (see the module).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: no layout fits, or the one that fits has no split with an image
            (a data YAML in the folder: where no other layout is there).
    """
    text = str(path)
    for name, generated in GENERATED.items():
        if text == name or text.startswith(f"{name}:"):
            opener = _generated_opener(text, *generated)
            return DatasetLayout(text, name, tuple(SYNTHETIC_SEEDS), opener)
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"dataset path {root} does not exist")
    if root.is_file():
        return _file_layout(root)
    finders = (
        _voc,
        _coco_folder,
        _cvat_folder,
        _via_folder,
        _via_split_folders,
        _createml_folder,
        _createml_split_folders,
        _labelme_split_folders,
        _split_folders,
        _voc_split_folders,
        _csv_folder,
        _csv_split_folders,
        _keras_txt_folder,
        _keras_txt_split_folders,
        _retinanet_csv_folder,
        _yaml_in,
        _darknet,
        _yolo,
        _voc_xml,
        _yolo_beside_images,
        _labelme_folder,
        _one_json,
    )
    layout = _first_layout(root, finders)
    if layout is not None:
        return layout
    raise ValueError(
        f"cannot tell the dataset format of {root}{_why_no_layout(root)}: looked for "
        "Annotations/ and ImageSets/ "
        "(Pascal VOC), annotations/*.json or one .json file (COCO), annotations.xml (CVAT for "
        "images), subfolders with "
        "one .json and images each (Roboflow COCO), one VGG Image Annotator .json in it or "
        "in subfolders with their images (VIA), subfolders with .xml files and "
        "images each (Roboflow Pascal VOC), _annotations.csv in it or in subfolders with "
        "their images (Roboflow TensorFlow CSV), classes.csv beside .csv files of boxes "
        "(keras-retinanet), _annotations.txt in it or in subfolders with their images (YOLO "
        "Keras TXT), _annotations.createml.json or a CreateML .json in it or in subfolders "
        "with their images (CreateML), data.yaml (Ultralytics), obj.data (Darknet "
        "YOLO, CVAT's YOLO 1.1), labels/ (YOLO), "
        ".xml files in it or in one subfolder (VOC without ImageSets/), images with "
        "their .txt and classes.txt beside them (LabelImg YOLO), LabelMe .json files in it "
        "or in a folder per split, or the names "
        "'synthetic[:N]' and 'slides[:N]'"
    )


def _first_layout(root: Path, finders: Sequence[Finder]) -> DatasetLayout | None:
    """The layout the first of ``finders`` finds in the folder ``root``; ``None`` where
    none does. A data YAML that names nothing to train on is passed over for a layout
    after it (:func:`_instead_of_yaml`)."""
    for k, finder in enumerate(finders):
        try:
            layout = finder(root)
        except UnusableDataYAML as unusable:
            return _instead_of_yaml(root, unusable, finders[k + 1 :])
        if layout is not None:
            return layout
    return None


def _instead_of_yaml(
    root: Path, unusable: UnusableDataYAML, finders: Sequence[Finder]
) -> DatasetLayout:
    """The layout one of ``finders`` finds in ``root`` beside its data YAML that names no
    ``train`` split and no split with an image (``unusable`` says why of each), with a
    warning that the YAML is passed over: it names nothing to train on, and should not
    hide a layout that works.

    Raises:
        UnusableDataYAML: ``unusable``, where no layout is beside the YAML.
    """
    layout = _first_layout(root, finders)
    if layout is None:
        raise unusable
    warnings.warn(
        f"{unusable}; nor does it name a train split: passed over with its names, {root} "
        f"is read as {layout.format}",
        stacklevel=4,
    )
    return layout


def _why_no_layout(root: Path) -> str:
    """What the refusal of ``root`` adds in brackets: where the dataset is, or why it is
    none (:func:`_nested_layout_hint`, :func:`_mask_folder_hint`); ``""`` where neither."""
    return _nested_layout_hint(root) or _mask_folder_hint(root)


def _nested_layout_hint(root: Path) -> str:
    """Where ``root`` holds nothing but one folder, and that folder is a dataset (an
    export unzipped into a folder of its own), advice naming it; else ``""``."""
    entries = [entry for entry in root.iterdir() if not entry.name.startswith(".")]
    if len(entries) != 1 or not entries[0].is_dir():
        return ""
    try:
        layout = find_layout(entries[0])
    except ValueError:
        return ""
    return f" (it holds one folder only, which reads as {layout.format}: --data {entries[0]})"


def _mask_folder_hint(root: Path) -> str:
    """Where a folder in ``root`` named for masks holds images (PennFudan's
    ``PedMasks/``, a ``masks/``), advice: no layout reads instance masks, whose boxes are
    to be derived first; else ``""``."""
    masks = sorted(
        entry
        for entry in root.iterdir()
        if entry.is_dir() and "mask" in entry.name.lower() and holds_images(entry)
    )
    if not masks:
        return ""
    return (
        f" ({masks[0].name}/ holds masks, which no layout reads: derive the boxes from them "
        "in a Dataset class of your own, or write them in one of the layouts looked for; "
        "README, Your own Dataset class)"
    )


def _file_layout(file: Path) -> DatasetLayout:
    """The dataset file ``file``: a data YAML or a COCO file by its suffix, in any case
    (``.YAML``, ``.JSON``), a CVAT for images or VIA file by its content, or Darknet's
    ``obj.data`` by its name."""
    if file.suffix.lower() in (".yaml", ".yml"):
        return _yaml_layout(file, read_data_yaml(file))
    if file.suffix.lower() == ".xml" and is_cvat_file(file):
        return _cvat_layout(file)
    if file.suffix.lower() == ".json" and is_via_file(file):
        return DatasetLayout(str(file), VIA_FORMAT, (), lambda *_: VIADetection(file))
    if file.suffix.lower() == ".json" and is_createml_file(file):
        return DatasetLayout(str(file), CREATEML_FORMAT, (), lambda *_: CreateMLDetection(file))
    if file.suffix.lower() == ".json":
        return DatasetLayout(str(file), "COCO", (), lambda split, _: _coco_file(file))
    if file.name == DATA_FILE:
        return _darknet_layout(file)
    if file.suffix.lower() == ".csv":
        return DatasetLayout(str(file), _csv_format(file), (), lambda *_: CSVDetection(file))
    if file.suffix.lower() == ".txt" and is_keras_txt(file):
        return DatasetLayout(str(file), KERAS_TXT_FORMAT, (), lambda *_: KerasTXTDetection(file))
    raise ValueError(
        f"{file}: a dataset file must be a COCO, VIA or CreateML .json, a data .yaml, a CVAT "
        "for images .xml, a TensorFlow Object Detection or keras-retinanet .csv, a YOLO Keras "
        f".txt (a line 'path x1,y1,x2,y2,class_id ...') or Darknet's {DATA_FILE}"
    )


def _csv_format(file: Path) -> str:
    """What ``faster-rcnn data`` calls the CSV of boxes ``file``: keras-retinanet's where
    its first row is a box (:func:`is_retinanet_csv`), else TensorFlow's."""
    return RETINANET_CSV_FORMAT if is_retinanet_csv(file) else CSV_FORMAT


def _generated_opener(
    text: str, make: Callable[..., DetectionDataset], sizes: dict[str, int]
) -> Opener:
    _, colon, count = text.partition(":")
    # A longer dataset overflows len() once it is read (a traceback, after the work before);
    # "synthetic:" with no number is refused, not taken for the default size. The text is
    # quoted as a shell would take it back: "in synthetic:", "in 'synthetic:1 0'".
    if colon and (not count.isdigit() or not 1 <= int(count) <= sys.maxsize):
        raise ValueError(
            f"in {shlex.quote(text)}, the number of images must be a whole number from 1 to "
            f"{sys.maxsize}"
        )

    def opener(split: str, _: Sequence[str] | None) -> DetectionDataset:
        size = int(count) if count else sizes[split]
        return make(size, seed=SYNTHETIC_SEEDS[split])

    return opener


def _voc(root: Path) -> DatasetLayout | None:
    """Pascal VOC: a split per list in ``ImageSets/Main/``; where the one list is CVAT's
    ``default.txt`` (its export without subsets), that list without splits."""
    if not ((root / "Annotations").is_dir() and (root / "ImageSets").is_dir()):
        return None
    stems = {p.stem for p in files_with_suffix(root / "ImageSets" / "Main", ".txt")}
    splits = tuple(sorted(stem for stem in stems if not _per_class_list(stem, stems)))
    if splits == (CVAT_NO_SUBSET,):
        return DatasetLayout(
            str(root),
            f"Pascal VOC, all images in ImageSets/Main/{CVAT_NO_SUBSET}.txt (CVAT's export "
            "without subsets)",
            (),
            lambda _, names: VOCDetection(root, CVAT_NO_SUBSET, names, is_split=False),
        )
    layout = DatasetLayout(
        str(root), "Pascal VOC", splits, lambda split, names: VOCDetection(root, split, names)
    )
    return _without_unusable(layout, lambda split: _lists_no_image(split_list(root, split), split))


def _per_class_list(stem: str, stems: set[str]) -> bool:
    """Whether ``stem`` is one of VOC's per-class image lists (``dog_train``, marking
    which images of ``train`` hold a dog), not a split."""
    name, _, split = stem.rpartition("_")
    return bool(name) and split in stems


def _coco_folder(root: Path) -> DatasetLayout | None:
    """COCO's own layout: a split per ``annotations/instances_<split>.json``, one such file
    too (``train2017`` alone); where there is none, a split per file, any one file
    without splits (CVAT's ``instances_default.json``, its export without subsets, or
    ``labels.json``). COCO's files of other tasks are left out (:func:`_detection_files`).

    Raises:
        ValueError: ``annotations/`` holds only COCO's files of other tasks.
    """
    files = files_with_suffix(root / "annotations", ".json")
    if not files:
        return None
    kept, note = _detection_files(root / "annotations", files)
    if len(kept) == 1 and _coco_split_name(kept[0]) is None:
        return DatasetLayout(str(root), "COCO", (), lambda split, _: _coco_file(kept[0]), note)
    by_split = {f.stem.removeprefix(INSTANCES): f for f in kept}
    layout = DatasetLayout(
        str(root),
        "COCO",
        tuple(by_split),
        lambda split, _: _coco_file(by_split[split], split),
        note,
    )
    return _without_unusable(
        layout,
        lambda split: _coco_without_images(by_split[split], _coco_folders(by_split[split]), split),
    )


def _detection_files(folder: Path, files: list[Path]) -> tuple[list[Path], str | None]:
    """Of the ``.json`` ``files`` of ``folder``, those of detection splits: the
    ``instances_<split>.json`` where there are some, else all but COCO's files of other
    tasks (``captions_*.json``, ``person_keypoints_*.json``); and a note naming the files
    left out (``None``: none is).

    Raises:
        ValueError: ``files`` are all COCO's files of other tasks.
    """
    instances = [f for f in files if f.stem.startswith(INSTANCES)]
    kept = instances or [f for f in files if not f.stem.startswith(COCO_OTHER_TASKS)]
    if not kept:
        raise ValueError(
            f"{folder} holds COCO's annotations of other tasks than detection "
            f"({first_few([f.name for f in files])}) and no {INSTANCES}<split>.json, "
            "where its boxes are"
        )
    left_out = [f.name for f in files if f not in kept]
    if not left_out:
        return kept, None
    return kept, (
        f"{folder}: {counted(len(left_out), 'file')} left out ({first_few(left_out)}): only "
        f"{INSTANCES}<split>.json files are read as detection splits"
    )


def _coco_split_name(file: Path) -> str | None:
    """The split an annotation file ``instances_<split>.json`` names; ``None`` for another
    name, and for CVAT's ``instances_default.json`` (all its images, not a split)."""
    split = file.stem.removeprefix(INSTANCES)
    return None if split in (file.stem, "", CVAT_NO_SUBSET) else split


def _cvat_folder(root: Path) -> DatasetLayout | None:
    """A folder holding CVAT's ``annotations.xml`` (:func:`.is_cvat_file`): that file."""
    file = root / ANNOTATIONS_XML
    return _cvat_layout(file, root) if file.is_file() and is_cvat_file(file) else None


def _cvat_layout(file: Path, path: Path | None = None) -> DatasetLayout:
    """The CVAT for images ``file``, given as ``path`` (its folder) or itself: a split per
    subset of its images, or none (:meth:`.CVATFile.splits`). It is read once, here, for
    its subsets, and each split opened from that. A subset none of whose images is there
    is left out with a note, unless ``train`` finds it (:func:`_without_unusable`).

    Raises:
        NoSplitWithImage: no subset has an image there.
    """
    read = read_cvat_file(file)
    splits = read.splits()
    layout = DatasetLayout(
        str(path or file),
        CVAT_FORMAT,
        splits,
        lambda split, _: CVATDetection(read, split if splits else None),
    )
    return _without_unusable(layout, lambda split: subset_without_images(read, split))


def _via_folder(root: Path) -> DatasetLayout | None:
    """A folder holding one ``.json`` file, of VIA (one split of the balloon dataset):
    that file, without splits."""
    file = _via_file_in(root)
    if file is None:
        return None
    return DatasetLayout(str(root), VIA_FORMAT, (), lambda *_: VIADetection(file))


def _via_split_folders(root: Path) -> DatasetLayout | None:
    """The Mask R-CNN balloon dataset's layout: each split a folder with its one VIA
    ``.json`` beside its images. A split folder whose file has no image beside it, and a
    folder named as a split that holds neither (:func:`_empty_split_folders`), are left
    out with a note, unless ``train`` finds it (:func:`_without_unusable`)."""
    return _file_per_split_folder(root, _via_file_in, (VIA_FORMAT, ".json"), VIADetection)


def _via_file_in(folder: Path) -> Path | None:
    """The one ``.json`` file of ``folder`` where it is VIA's (:func:`.is_via_file`); else
    ``None`` (a folder of LabelMe's files, one per image, is read no further)."""
    files = files_with_suffix(folder, ".json")
    return files[0] if len(files) == 1 and is_via_file(files[0]) else None


def _createml_folder(root: Path) -> DatasetLayout | None:
    """A folder holding a CreateML ``.json`` beside its images: Roboflow's
    ``_annotations.createml.json`` (its export of one split), or its one ``.json`` where
    that is CreateML's (:func:`_createml_file_in`); that file, without splits."""
    file = _createml_file_in(root)
    if file is None:
        return None
    return DatasetLayout(str(root), CREATEML_FORMAT, (), lambda *_: CreateMLDetection(file))


def _createml_split_folders(root: Path) -> DatasetLayout | None:
    """Roboflow's "CreateML JSON" export: each split a folder with its
    ``_annotations.createml.json`` beside its images. Tried before Roboflow's COCO
    folders (:func:`_split_folders`), which would take its one ``.json`` for theirs. A
    split folder whose file has no image beside it, and a folder named as a split that
    holds neither (:func:`_empty_split_folders`), are left out with a note, unless
    ``train`` finds it (:func:`_without_unusable`)."""
    return _file_per_split_folder(
        root, _createml_file_in, (CREATEML_FORMAT, ".json"), CreateMLDetection
    )


def _createml_file_in(folder: Path) -> Path | None:
    """The CreateML file of ``folder``: ``_annotations.createml.json``, else its one
    ``.json`` file where that is CreateML's (:func:`.is_createml_file`); else ``None``."""
    if (folder / CREATEML_FILE).is_file():
        return folder / CREATEML_FILE
    files = files_with_suffix(folder, ".json")
    return files[0] if len(files) == 1 and is_createml_file(files[0]) else None


def _split_folders(root: Path) -> DatasetLayout | None:
    """Roboflow's COCO export: each split a folder with its ``.json`` and images. A folder
    whose one ``.json`` is named as one of theirs is a split too where it holds no image
    (Roboflow's ``test/`` exported with its ``_annotations.coco.json`` alone), and so is
    a folder named as a split that holds neither (:func:`_empty_split_folders`): left out
    with a note, unless ``train`` finds it (:func:`_without_unusable`)."""
    files = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        found = files_with_suffix(folder, ".json")
        if len(found) == 1:
            files[folder.name] = found[0]
    names = {file.name for file in files.values() if holds_images(file.parent)}
    by_split = {split: file for split, file in files.items() if file.name in names}
    if not by_split:
        return None
    return _folder_per_split(
        root,
        by_split,
        ("COCO", ".json"),
        lambda split, _: COCODetection(by_split[split].parent, by_split[split], split),
        lambda split: _coco_without_images(by_split[split], [by_split[split].parent], split),
    )


def _file_per_split_folder(
    root: Path,
    file_in: Callable[[Path], Path | None],
    kind: tuple[str, str],
    reader: Callable[[Path, str], DetectionDataset],
) -> DatasetLayout | None:
    """The layout of a folder per split, each with one annotation file beside its images
    (``file_in`` finds a folder's, ``None`` where it has none): each split's file opened
    by ``reader(file, split)``; a split whose file has no image beside it left out with a
    note, and ``kind`` as :func:`_folder_per_split` takes it. ``None`` where no folder has
    such a file."""
    by_split = {
        folder.name: file
        for folder in sorted(p for p in root.iterdir() if p.is_dir())
        if (file := file_in(folder)) is not None
    }
    if not by_split:
        return None
    return _folder_per_split(
        root,
        by_split,
        kind,
        lambda split, _: reader(by_split[split], split),
        lambda split: _without_images_beside(by_split[split], split),
    )


def _file_named(name: str) -> Callable[[Path], Path | None]:
    """What finds the file ``name`` in a folder: its path where it is there, else ``None``."""
    return lambda folder: folder / name if (folder / name).is_file() else None


def _folder_per_split(
    root: Path,
    by_split: Mapping[str, Path],
    kind: tuple[str, str],
    open_split: Opener,
    without_images: Callable[[str], str | None],
) -> DatasetLayout:
    """The layout of a folder per split (Roboflow's exports, the balloon dataset's):
    ``by_split`` (each split's folder or annotation file) opened by ``open_split``.
    ``kind`` is the format's name and the suffix of its annotation files: a folder named
    as a split that holds neither images nor such files (:func:`_empty_split_folders`)
    is refused, and a split that ``without_images`` says holds no image (what it says) is
    left out with a note, unless ``train`` finds it (:func:`_without_unusable`)."""
    name, suffix = kind
    empty = _empty_split_folders(root, suffix)
    layout = DatasetLayout(
        str(root),
        f"{name} (a folder per split)",
        tuple(sorted({*by_split, *empty})),
        _refusing(empty, open_split),
    )
    return _without_unusable(layout, lambda split: empty.get(split) or without_images(split))


def _empty_split_folders(root: Path, suffix: str) -> dict[str, str]:
    """The folders of ``root`` named as a split is (``train/``, ``valid/``) that hold no
    image and no ``suffix`` file (``.json``, ``.xml``) beside Roboflow's folders of splits,
    each with what is said of it (:func:`empty_split_message`): splits that hold no image,
    so that ``train`` finds an empty ``train/`` and refuses it as such, not as no split
    fitting ``train``."""
    return {
        folder.name: empty_split_message(folder, folder.name, f"no {suffix} file or image in it")
        for folder in sorted(p for p in root.iterdir() if p.is_dir())
        if _names_a_split(folder.name)
        and not holds_images(folder)
        and not files_with_suffix(folder, suffix)
    }


def _refusing(empty: Mapping[str, str], opener: Opener) -> Opener:
    """``opener``, refusing the ``empty`` splits (split: what is said of it)."""

    def opened(split: str, class_names: Sequence[str] | None) -> DetectionDataset:
        if split in empty:
            raise ValueError(empty[split])
        return opener(split, class_names)

    return opened


def _voc_split_folders(root: Path) -> DatasetLayout | None:
    """Roboflow's Pascal VOC export: each split a folder of ``.xml`` files beside their
    images, one folder alone too where a split's name names it (``valid/``, an export of
    that split only). Its images are looked for in that folder alone, so that an image
    of another split with the same name is never taken. XML files in ``root`` itself
    make it a LabelImg folder instead, and so does one such folder of another name
    (``images/``). A folder of ``.xml`` files without images beside such folders is a
    split too (Roboflow's ``test/`` exported with its ``.xml`` files alone): left out with
    a note, unless ``train`` finds it (:func:`_without_unusable`), and so is a folder
    named as a split that holds neither (:func:`_empty_split_folders`)."""
    if holds_voc_xml(root):
        return None
    by_split = {
        folder.name: folder
        for folder in sorted(p for p in root.iterdir() if p.is_dir())
        if holds_voc_xml(folder)
    }
    with_images = [split for split, folder in by_split.items() if holds_images(folder)]
    lone_split = len(with_images) == 1 and _names_a_split(with_images[0])
    if len(with_images) < 2 and not lone_split:
        return None
    _warn_of_yolo_files_in_splits(root, by_split)
    return _folder_per_split(
        root,
        by_split,
        ("Pascal VOC XML files", ".xml"),
        lambda split, names: VOCFolder(by_split[split], by_split[split], names, split=split),
        lambda split: _xml_without_images(by_split[split], split),
    )


def _xml_without_images(folder: Path, split: str) -> str | None:
    """``"<folder>: the <split> split holds no image (N .xml files without their images)"``
    where ``folder`` holds no image file (each ``.xml``'s image is looked for there
    alone); else ``None``."""
    if holds_images(folder):
        return None
    return empty_split_message(folder, split, without_their_images(folder))


def _csv_folder(root: Path) -> DatasetLayout | None:
    """A folder holding ``_annotations.csv`` beside its images: that file, without
    splits (Roboflow's CSV export of one split, unzipped into its folder)."""
    file = root / ANNOTATIONS_FILE
    if not file.is_file():
        return None
    return DatasetLayout(str(root), _csv_format(file), (), lambda *_: CSVDetection(file))


def _csv_split_folders(root: Path) -> DatasetLayout | None:
    """Roboflow's "Tensorflow Object Detection CSV" export: each split a folder with its
    ``_annotations.csv`` beside its images. A split folder whose file has no image beside
    it, and a folder named as a split that holds neither (:func:`_empty_split_folders`),
    are left out with a note, unless ``train`` finds it (:func:`_without_unusable`)."""
    return _file_per_split_folder(
        root, _file_named(ANNOTATIONS_FILE), (CSV_FORMAT, ".csv"), CSVDetection
    )


def _without_images_beside(file: Path, split: str) -> str | None:
    """``"<file>: the <split> split holds no image (no .jpg/... file beside it)"`` where
    the folder of the annotation ``file`` (a CSV, a VIA file) holds no image, as opening
    it says; else ``None``."""
    if holds_images(file.parent):
        return None
    return empty_split_message(file, split, NO_IMAGE_BESIDE)


def _keras_txt_folder(root: Path) -> DatasetLayout | None:
    """A folder holding ``_annotations.txt`` (with ``_classes.txt``) beside its images:
    that file, without splits (Roboflow's YOLO Keras TXT export of one split)."""
    file = root / KERAS_TXT_FILE
    if not file.is_file():
        return None
    return DatasetLayout(str(root), KERAS_TXT_FORMAT, (), lambda *_: KerasTXTDetection(file))


def _keras_txt_split_folders(root: Path) -> DatasetLayout | None:
    """Roboflow's "YOLO Keras TXT" export: each split a folder with its
    ``_annotations.txt`` and ``_classes.txt`` beside its images. A split folder whose file
    has no image beside it, and a folder named as a split that holds neither
    (:func:`_empty_split_folders`), are left out with a note, unless ``train`` finds it
    (:func:`_without_unusable`)."""
    return _file_per_split_folder(
        root, _file_named(KERAS_TXT_FILE), (KERAS_TXT_FORMAT, ".txt"), KerasTXTDetection
    )


def _retinanet_csv_folder(root: Path) -> DatasetLayout | None:
    """keras-retinanet's CSV: a folder holding its class mapping ``classes.csv`` beside its
    CSV files of boxes, a split per file by its stem, or one without splits (see the
    module). A CSV whose first row is no box (a header) is left out with a note."""
    mapping = class_mapping_in(root)
    if mapping is None:
        return None
    files = [file for file in files_with_suffix(root, ".csv") if file != mapping]
    by_split = {file.stem: file for file in files if is_retinanet_csv(file)}
    if not by_split:
        return None
    others = [file.name for file in files if file.stem not in by_split]
    note = None
    if others:
        note = (
            f"{root}: {counted(len(others), 'CSV file')} left out ({first_few(others)}): "
            "a first row that is no box, where keras-retinanet's CSV has no header"
        )
    if len(by_split) == 1:
        (file,) = by_split.values()
        return DatasetLayout(
            str(root), RETINANET_CSV_FORMAT, (), lambda *_: CSVDetection(file), note
        )
    return DatasetLayout(
        str(root),
        f"{RETINANET_CSV_FORMAT} (a file per split)",
        tuple(by_split),
        lambda split, _: CSVDetection(by_split[split], split),
        note,
    )


def _names_a_split(name: str) -> bool:
    """Whether the folder name ``name`` is one of the usual splits' (``train``, ``valid``,
    ``Test``; see ``SPLIT_ALIASES``)."""
    return any(name.lower() in (split, *aliases) for split, aliases in SPLIT_ALIASES.items())


def _yaml_in(root: Path) -> DatasetLayout | None:
    """The data YAML in ``root``: its ``data.yaml``, else the first ``.yaml`` that is one
    (a mapping with ``names``); ``None`` where there is none.

    Raises:
        UnusableDataYAML: the data YAML names no split with an image
            (:func:`_yaml_layout`), and so no ``train`` split, which is never left out.
    """
    candidates = [root / "data.yaml"] if (root / "data.yaml").is_file() else []
    candidates = candidates or files_with_suffix(root, ".yaml", ".yml")
    for file in candidates:
        try:
            data = read_data_yaml(file)
        except ValueError:
            continue
        try:
            return _yaml_layout(file, data)
        except NoSplitWithImage as error:
            raise UnusableDataYAML(str(error)) from None
    return None


def _yaml_layout(file: Path, data: dict[str, Any]) -> DatasetLayout:
    """The Ultralytics data YAML ``file`` (its mapping ``data``): a split per one it names,
    but those whose folders or lists are not there or hold no image
    (:func:`unusable_split`), left out with a note.

    Raises:
        NoSplitWithImage: no split it names holds an image.
    """
    layout = DatasetLayout(
        str(file),
        "YOLO (Ultralytics YAML)",
        yaml_splits(data),
        lambda split, _: UltralyticsYOLO(file, split),
    )
    return _without_unusable(layout, lambda split: unusable_split(file, data, split))


def _darknet(root: Path) -> DatasetLayout | None:
    file = root / DATA_FILE
    return _darknet_layout(file) if file.is_file() else None


def _darknet_layout(file: Path) -> DatasetLayout:
    """Darknet's layout (CVAT's "YOLO 1.1"): a split per list ``obj.data`` names.

    Raises:
        ValueError: ``obj.data`` is malformed or names no list.
    """
    lists = darknet_splits(read_obj_data(file))
    if not lists:
        raise ValueError(f"{file} names no list of images (as 'train = data/train.txt')")
    root = file.parent
    layout = DatasetLayout(
        str(root),
        "YOLO (Darknet obj.data)",
        tuple(lists),
        lambda split, _: DarknetYOLO(root, split),
    )
    return _without_unusable(
        layout, lambda split: _lists_no_image(darknet_path(root, lists[split]), split)
    )


def _yolo(root: Path) -> DatasetLayout | None:
    """YOLO's ``images/`` and ``labels/``: a split per folder of ``images/``, or none.

    Raises:
        FileNotFoundError: ``labels/`` holds label files and there is no image, in
            ``images/`` or beside it (Label Studio's YOLO export without its images).
    """
    images, labels = root / "images", root / "labels"
    if labels.is_dir() and not (images.is_dir() or holds_images(root)) and _holds_txt(labels):
        raise FileNotFoundError(
            f"{labels} holds YOLO label files, but there is no {images} beside it: put "
            "their images there (Label Studio's YOLO export may leave them out)"
        )
    if not (labels.is_dir() and images.is_dir()):
        return None
    splits = tuple(sorted(p.name for p in images.iterdir() if p.is_dir()))
    if not splits:
        return DatasetLayout(str(root), "YOLO", (), lambda split, _: YOLODetection(root))
    layout = DatasetLayout(str(root), "YOLO", splits, lambda split, _: YOLODetection(root, split))
    return _without_unusable(layout, lambda split: _holds_no_image(images / split, split))


def _holds_no_image(folder: Path, split: str) -> str | None:
    """``"<folder>: the <split> split holds no image (no .jpg/... file in it)"`` where
    ``folder`` holds no image file; else ``None``."""
    return None if holds_images(folder) else empty_split_message(folder, split, NO_IMAGE_FILE)


def _holds_txt(folder: Path) -> bool:
    """Whether ``folder`` or a folder in it holds a ``.txt`` file."""
    return any(p.suffix.lower() == ".txt" for p in folder.rglob("*"))


def _yolo_beside_images(root: Path) -> DatasetLayout | None:
    """LabelImg's YOLO format: images with their label files and ``classes.txt`` beside
    them (:class:`YOLOFolder`)."""
    if not ((root / NAMES_FILES[0]).is_file() and holds_images(root)):
        return None
    return DatasetLayout(
        str(root), "YOLO .txt files beside their images", (), lambda *_: YOLOFolder(root)
    )


def _labelme_folder(root: Path) -> DatasetLayout | None:
    """LabelMe's ``.json`` files in ``root``, beside their images or apart from them (each
    file's ``imagePath``), without splits: one file alone too, told from Label Studio's
    COCO file by its content (:func:`holds_labelme_json`)."""
    if not holds_labelme_json(root):
        return None
    return DatasetLayout(str(root), LABELME_FORMAT, (), lambda *_: LabelMeFolder(root))


def _labelme_split_folders(root: Path) -> DatasetLayout | None:
    """LabelMe's ``.json`` files in a folder per split (``train/``, ``valid/``,
    ``test/``), as Roboflow's layouts are; one folder alone too where a split's name names
    it. LabelMe files in ``root`` itself make it a folder without splits instead
    (:func:`_labelme_folder`). Tried before Roboflow's COCO folders
    (:func:`_split_folders`), which would take a split folder holding one LabelMe file
    for one of theirs; a folder named as a split that holds neither images nor ``.json``
    files is left out with a note (:func:`_empty_split_folders`)."""
    by_split = {
        folder.name: folder
        for folder in sorted(p for p in root.iterdir() if p.is_dir())
        if holds_labelme_json(folder)
    }
    lone_split = len(by_split) == 1 and _names_a_split(next(iter(by_split)))
    if (len(by_split) < 2 and not lone_split) or holds_labelme_json(root):
        return None
    return _folder_per_split(
        root,
        by_split,
        (LABELME_FORMAT, ".json"),
        lambda split, _: LabelMeFolder(by_split[split], split),
        lambda split: None,
    )


def _one_json(root: Path) -> DatasetLayout | None:
    files = files_with_suffix(root, ".json")
    if len(files) != 1:
        return None
    return DatasetLayout(str(root), "COCO", (), lambda split, _: _coco_file(files[0]))


def _voc_xml(root: Path) -> DatasetLayout | None:
    folders = [root] if holds_voc_xml(root) else []
    folders = folders or [p for p in sorted(root.iterdir()) if holds_voc_xml(p)]
    if len(folders) != 1:
        return None
    _warn_of_yolo_files_beside(root, folders[0])
    return DatasetLayout(
        str(root),
        "Pascal VOC XML files (no ImageSets/)",
        (),
        lambda split, names: VOCFolder(folders[0], class_names=names),
    )


def _warn_of_yolo_files_beside(root: Path, xml_dir: Path) -> None:
    """Warn where ``root``, read as the VOC ``.xml`` files of ``xml_dir``, or ``xml_dir``
    holds LabelImg's YOLO files too (:func:`_yolo_label_files`; LabelImg saves in either
    format): they are not read, and which format the user means cannot be told."""
    for folder in dict.fromkeys([root, xml_dir]):
        labels = _yolo_label_files(folder)
        if labels:
            xml = "the .xml files" if xml_dir == folder else f"{xml_dir.name}/"
            warnings.warn(
                f"{folder} holds "
                f"{counted(len(files_with_suffix(xml_dir, '.xml')), 'Pascal VOC .xml file')} and "
                f"{counted(len(labels), 'YOLO .txt label file')} beside their images, with "
                f"{NAMES_FILES[0]}: read as Pascal VOC, whose files name their classes; to "
                f"read the YOLO files instead, move {xml} out of it",
                stacklevel=5,
            )
            return


def _warn_of_yolo_files_in_splits(root: Path, by_split: Mapping[str, Path]) -> None:
    """Warn where split folders of ``root``, read as the VOC ``.xml`` files in them
    (``by_split``: split -> folder), hold LabelImg's YOLO files too, as
    :func:`_warn_of_yolo_files_beside` warns of one folder."""
    labels = {split: _yolo_label_files(folder) for split, folder in by_split.items()}
    mixed = [split for split in by_split if labels[split]]
    if not mixed:
        return
    xml = sum(len(files_with_suffix(by_split[split], ".xml")) for split in mixed)
    warnings.warn(
        f"{root}: the split folders {', '.join(f'{split}/' for split in mixed)} hold "
        f"{counted(xml, 'Pascal VOC .xml file')} and "
        f"{counted(sum(len(labels[split]) for split in mixed), 'YOLO .txt label file')} "
        f"beside their images, with {NAMES_FILES[0]}: read as Pascal VOC, whose files name "
        "their classes; to read a split's YOLO files instead, move its .xml files out and "
        "open its folder alone",
        stacklevel=5,
    )


def _yolo_label_files(folder: Path) -> list[Path]:
    """LabelImg's YOLO label files in ``folder``: the ``.txt`` files beside an image of
    their stem, where ``classes.txt`` is there too; none where it is not. A
    ``classes.txt`` or ``README.txt`` without such label files is no YOLO layout."""
    if not (folder / NAMES_FILES[0]).is_file():
        return []
    stems = {image.stem for image in image_files_in(folder)}
    return [
        p
        for p in files_with_suffix(folder, ".txt")
        if p.stem in stems and p.name not in NAMES_FILES
    ]


def _coco_file(file: Path, split: str | None = None) -> COCODetection:
    """The COCO ``file``, the split ``split`` (``None``: a file without splits), its images
    in the first folder that holds them (see the module): folders its own name gives
    (``train2017/`` or ``train/`` of ``instances_train2017.json``), never one named for the
    split asked, which a layout without splits takes for any name.

    Raises:
        FileNotFoundError: a file in ``annotations/`` whose image folder is found nowhere
            (a file that lists no image is refused as such: :class:`COCODetection`).
    """
    *folders, root = _coco_folders(file)
    found = [folder for folder in folders if folder.is_dir()]
    if not found and file.parent.name == "annotations" and listed_image_names(file) != []:
        raise FileNotFoundError(
            f"no images folder for {file}: looked for {[str(f) for f in folders]}"
        )
    return COCODetection([*found, root], file, split)


def _coco_folders(file: Path) -> list[Path]:
    """Where the images of the COCO ``file`` are looked for (see the module): the folders
    its own name gives, then the dataset's folder (above ``annotations/``, else its own)."""
    root = file.parent.parent if file.parent.name == "annotations" else file.parent
    stem = file.stem.removeprefix(INSTANCES)
    usual = [root / name for name in SPLIT_ALIASES if stem.startswith(name)]  # train2017
    folders = [root / stem, *usual, root / "images" / stem, root / "images"]
    return list(dict.fromkeys([*folders, root]))


def warn_of_look_alike_classes(class_names: Sequence[str], source: str) -> None:
    """Warn of class names given twice, which a model refuses (its classes are told apart
    by name), and of those that differ only in case, spaces or punctuation (``RBC`` and
    ``rbc``, ``red_cell`` and ``red cell``): most likely one class labelled two ways,
    which would train as two that compete for the same objects."""
    repeated = sorted({name for name in class_names if class_names.count(name) > 1})
    if repeated:
        warnings.warn(
            f"{source}: the class names {', '.join(map(repr, repeated))} are given more than "
            "once: a model tells its classes apart by name, so train refuses them; give each "
            "class a name of its own",
            stacklevel=3,
        )
    groups: dict[str, list[str]] = {}
    for name in dict.fromkeys(class_names):
        groups.setdefault("".join(c for c in name.casefold() if c.isalnum()), []).append(name)
    alike = [" and ".join(map(repr, names)) for names in groups.values() if len(names) > 1]
    if alike:
        warnings.warn(
            f"{source}: the classes {'; '.join(alike)} differ only in case, spaces or "
            "punctuation: where they are one class, give it one name in the annotations",
            stacklevel=3,
        )
