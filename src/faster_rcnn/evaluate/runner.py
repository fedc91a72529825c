"""Evaluate a detector over a dataset: VOC mAP, COCO AP and the RPN's proposal recall."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor
from tqdm import tqdm

from ..counted import counted
from ..data.dataset import Sample, UnreadableImageError
from ..data.loader import Batch, make_eval_loader
from ..data.resizable import UnresizableImageError
from ..data.unreadable import UnreadableLog
from ..host_cpus import one_thread
from .coco_ap import COCO_MAX_DETECTIONS, COCOEvaluator
from .error_breakdown import ErrorBreakdown, ErrorBreakdownEvaluator
from .proposal_recall import RECALL_LIMITS, SIZE_GROUPS, ProposalRecallEvaluator, RecallCurves
from .voc_map import VOCEvaluator, VOCResult


class Detector(Protocol):
    """What :func:`evaluate_detector` needs of a model (a :class:`FasterRCNN` has it)."""

    num_classes: int
    training: bool

    def eval(self) -> Any: ...

    def train(self, mode: bool = True) -> Any: ...

    def detect_with_proposals(
        self, images: list[Tensor], proposal_limit: int | None = None
    ) -> tuple[list[dict[str, Tensor]], list[dict[str, Tensor]]]: ...


@dataclass(frozen=True)
class EvaluationResult:
    """Everything :func:`evaluate_detector` measured.

    Attributes:
        voc: VOC AP at IoU 0.5, area under the curve (VOC2010+).
        voc07: VOC AP at IoU 0.5, 11-point (VOC2007).
        coco: COCO box figures by name (``"AP"``, ``"AP50"``, ..., ``"ARl"``), NaN where
            there is no ground truth of the kind.
        proposals: proposal recall (``"recall@300@0.7"``, ``"AR@100"``, ``"num_gt"``, by
            size ``"recall@300@0.7/small"``, ``"num_gt/small"``, and
            ``"proposals_per_image/mean"`` and ``"/max"``).
        recall_curves: the numbers behind the recall plots (``proposals`` among them).
        num_images: images evaluated.
        detection_proposals: proposals per image the model's detections use (its
            ``config.rpn.post_nms_top_n_test``), ``None`` for a model without a config.
        unreadable: the image files that could not be read, left out of every figure
            (their ground truth too).
        unresizable: the images too elongated to resize to the model's sizes, left out
            alike.
        errors: where VOC AP@0.5 is lost per class: the false positives by kind and
            the missed objects by the stage that lost them.
        coco_capped: how many images hold more objects of a class than COCO scores
            detections of it (:data:`~faster_rcnn.evaluate.coco_ap.COCO_MAX_DETECTIONS`),
            and the most objects of a class an image holds.
    """

    voc: VOCResult
    voc07: VOCResult
    coco: dict[str, float]
    proposals: dict[str, float]
    recall_curves: RecallCurves
    num_images: int
    detection_proposals: int | None = None
    unreadable: tuple[str, ...] = ()
    unresizable: tuple[str, ...] = ()
    errors: ErrorBreakdown | None = None
    coco_capped: tuple[int, int] = (0, 0)

    def as_dict(self) -> dict[str, float]:
        """All figures as one flat dict of floats (NaN where undefined).

        Keys: ``"voc_map50"``, ``"voc07_map50"``, ``"voc_ap50/<class>"``,
        ``"coco_ap"``, ``"coco_ap50"``, ... (COCO names in lower case), and the proposal
        recall keys unchanged.
        """
        flat: dict[str, float] = {
            "voc_map50": self.voc.map,
            "voc07_map50": self.voc07.map,
        }
        flat.update({f"voc_ap50/{name}": ap for name, ap in self.voc.ap.items()})
        flat.update({f"coco_{name.lower()}": value for name, value in self.coco.items()})
        flat.update(self.proposals)
        if self.errors is not None:
            flat.update(self.errors.as_dict())
        flat["num_images"] = float(self.num_images)
        flat["num_unreadable_images"] = float(len(self.unreadable))
        flat["num_unresizable_images"] = float(len(self.unresizable))
        return flat

    def save_json(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`as_dict` to ``path`` as JSON (its folder created), undefined
        figures (NaN, e.g. a class without objects) as ``null``."""
        write_figures(path, self.as_dict(), indent=2)

    def table(self, detections: bool = True) -> str:
        """A short printable summary followed by the per-class VOC table; without
        ``detections`` (a box head never trained: an RPN trained alone), the images and
        the proposal recall alone."""
        kinds = (
            (UnreadableImageError.kind, self.unreadable),
            (UnresizableImageError.kind, self.unresizable),
        )
        skipped = ", ".join(f"{len(files)} {kind}" for kind, files in kinds if files)
        skipped = f" ({skipped}, left out)" if skipped else ""
        if not detections:
            return "\n".join([f"images: {self.num_images}{skipped}", *self._proposal_lines()])
        lines = [
            f"images: {self.num_images}{skipped}",
            *self._nothing_to_find_note(),
            f"VOC mAP@0.5: {_fmt(self.voc.map)} (area)  {_fmt(self.voc07.map)} (11-point)",
            self._coco_line(),
            *self._coco_cap_lines(),
            *self._proposal_lines(),
            "",
            self.voc.table(),
        ]
        if self.errors is not None:
            lines += ["", self.errors.table()]
        return "\n".join(lines)

    def _nothing_to_find_note(self) -> list[str]:
        """Why every AP and recall is n/a, where the images hold no object to find."""
        if sum(self.voc.npos.values()):
            return []
        if not self.num_images:
            return ["no image was scored: every AP and recall is n/a, undefined without objects"]
        return [
            "no object to find in them (none annotated, or each difficult or a crowd region): "
            "every AP and recall is n/a, undefined without objects"
        ]

    def _coco_line(self) -> str:
        """The COCO figures, and why a size's AP is n/a where the others are not."""
        coco = self.coco
        line = (
            f"COCO AP: {_fmt(coco['AP'])}  AP50: {_fmt(coco['AP50'])}  "
            f"AP75: {_fmt(coco['AP75'])}  APs/m/l: {_fmt(coco['APs'])} / "
            f"{_fmt(coco['APm'])} / {_fmt(coco['APl'])}  AR100: {_fmt(coco['AR100'])}"
        )
        sizes = (coco["APs"], coco["APm"], coco["APl"])
        if math.isnan(coco["AP"]) or not any(map(math.isnan, sizes)):
            return line
        return f"{line}  (n/a: no object of that size)"

    def _coco_cap_lines(self) -> list[str]:
        """A line saying where COCO's cap on the detections it scores limits its recall."""
        images, most = self.coco_capped
        if images == 0:
            return []
        return [
            f"  COCO scores each class's best {COCO_MAX_DETECTIONS} detections an image (its "
            f"maxDets): in {images} of {counted(self.num_images, 'image')} a class has more "
            f"objects (up to {most}), at most {COCO_MAX_DETECTIONS} of which it can count "
            "as found; VOC mAP scores every detection"
        ]

    def _proposal_lines(self) -> list[str]:
        """Proposal recall at the limits measured, what was evaluated, and recall by size."""
        curves = self.recall_curves
        measured = curves.measured(curves.limits)
        own = self.detection_proposals
        uses = "" if own is None else f" (the model's detections use its {own})"
        lines = [
            f"proposal recall ({counted(curves.num_gt, 'box')}), proposals evaluated up to "
            f"{curves.limits[-1]} per image{uses}:",
            f"  mean {_fmt_count(self.proposals['proposals_per_image/mean'])} proposals made "
            f"per image, max {curves.max_proposals}",
        ]
        for k in measured:
            keys = (*(f"recall@{k}@{t:g}" for t in curves.iou_thresholds), f"AR@{k}")
            lines.append("  " + "  ".join(f"{key}: {_fmt(self.proposals[key])}" for key in keys))
        missing = ", ".join(f"@{k}" for k in curves.not_measured())
        if missing:
            lines.append(
                f"  {missing} not measured: no image had more than {measured[-1]} proposals "
                f"(the figures would repeat @{measured[-1]})"
            )
        limit = own if own in measured else measured[-1]
        counts = curves.size_counts()
        for t in curves.iou_thresholds:
            recall = curves.by_size(limit, t)
            sizes = "  ".join(
                f"{g} {_fmt(recall[g])} ({counted(counts[g], 'box')})" for g in SIZE_GROUPS
            )
            lines.append(f"  recall by size at IoU {t:g}, {limit} proposals: {sizes}")
        return lines


def evaluate_detector(
    model: Detector,
    dataset: Sequence[Sample],
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    class_names: Sequence[str] | None = None,
    progress: bool = False,
    coco_annotation_file: str | os.PathLike[str] | None = None,
    strict: bool = False,
) -> EvaluationResult:
    """Run ``model.detect_with_proposals`` over a dataset and score it.

    The model is put in eval mode (and back in its former mode afterwards) and run
    without gradients. It must already be on ``device``; images go there, results come
    back to the CPU. An image that cannot be read is left out with a warning and listed
    in the result's ``unreadable``.

    The proposal recall is evaluated with up to 1000 proposals per image, more than some
    models keep, or the model's own limit where it keeps more: the RPN is run with its
    post-NMS limit raised to that for the evaluation only, and the detections come from
    the model's own first proposals, as without it
    (``detect_with_proposals(images, proposal_limit=1000)``).

    Args:
        model: a detector with ``num_classes`` (background included) and
            ``detect_with_proposals``.
        dataset: items ``(image, target)``, the image ``(3, H, W)`` float in 0..1 or
            ``uint8`` levels, as the model takes it; targets as the model's training
            targets, optionally with ``"iscrowd"`` (COCO's crowd regions: in no figure
            an object to find, nor a false positive when detected), ``"difficult"``
            (alike; in COCO AP matched by IoU and taking one detection, as COCOeval's
            ignored objects) and ``"area"`` (COCO).
        batch_size: images per forward pass (batches of
            :func:`~faster_rcnn.data.make_eval_loader`, in dataset order).
        device: where the images are sent.
        class_names: names of classes ``1..num_classes-1``, then of any the dataset
            has that the model was not trained on (each scored: never found); default
            the dataset's ``class_names`` attribute if it has one.
        progress: show a progress bar.
        coco_annotation_file: score COCO AP against this annotation file (segmentation
            areas for the size buckets, as the official numbers) instead of the targets;
            targets then need ``"image_id"``, and the dataset's ``label_to_category_id``
            (if it has one) maps labels to category ids.
        strict: raise :class:`~faster_rcnn.data.dataset.UnreadableImageError` at an
            unreadable image instead.
    """
    loader = make_eval_loader(dataset, batch_size, skip_unreadable=True)
    unreadable = UnreadableLog(strict=strict)
    if class_names is None:
        class_names = getattr(dataset, "class_names", None)
    evaluators = _make_evaluators(model, dataset, class_names, coco_annotation_file)
    with _in_eval_mode(model), torch.no_grad():
        num_images = _score_batches(model, loader, evaluators, device, unreadable, progress)
    return evaluators.result(num_images, _detection_proposals(model), unreadable)


@dataclass(frozen=True)
class _Evaluators:
    """The evaluators an evaluation feeds batch by batch.

    Attributes:
        voc, coco, errors, proposals: the VOC AP, COCO AP, error breakdown and proposal
            recall evaluators.
        coco_ids_by_index: whether COCO's image ids are the dataset indices (in-memory
            ground truth), else the targets' ``"image_id"``.
        head_proposals: the proposals per image the head scores, those the error
            breakdown looks for a missed object among.
    """

    voc: VOCEvaluator
    coco: COCOEvaluator
    errors: ErrorBreakdownEvaluator
    proposals: ProposalRecallEvaluator
    coco_ids_by_index: bool
    head_proposals: int

    @property
    def proposal_limit(self) -> int:
        """The proposals per image the RPN is asked for: as many as the recall is
        evaluated with."""
        return max(self.proposals.limits)

    # Scoring is many small operations per image (its detections and proposals against
    # its few objects): a second thread only waits for the first (see
    # host_cpus.one_thread), while the model's forward between batches keeps its threads.
    @one_thread()
    def update(
        self,
        first_index: int,
        detections: list[dict[str, Tensor]],
        proposals: list[dict[str, Tensor]],
        targets: list[dict[str, Tensor]],
    ) -> None:
        """Add a batch of images, the first of them dataset image ``first_index``.

        Args:
            detections: per image ``{"boxes": (D, 4), "labels": (D,), "scores": (D,)}``.
            proposals: per image ``{"boxes": (P, 4), ...}``, best first, up to
                :attr:`proposal_limit`.
            targets: per image the dataset's target.
        """
        self.voc.update(detections, targets)
        indices = list(range(first_index, first_index + len(detections)))
        self.coco.update(detections, targets, indices if self.coco_ids_by_index else None)
        self.proposals.update(proposals, targets)
        scored = [{"boxes": p["boxes"][: self.head_proposals]} for p in proposals]
        self.errors.update(detections, scored, targets)

    @one_thread()
    def result(
        self, num_images: int, detection_proposals: int | None, unreadable: UnreadableLog
    ) -> EvaluationResult:
        """Every figure of the images added (``num_images`` of them)."""
        curves = self.proposals.recall_curves()
        return EvaluationResult(
            voc=self.voc.compute(use_07_metric=False),
            voc07=self.voc.compute(use_07_metric=True),
            coco=self.coco.compute(),
            proposals=curves.figures,
            recall_curves=curves,
            num_images=num_images,
            detection_proposals=detection_proposals,
            unreadable=unreadable.files_of(UnreadableImageError.kind),
            unresizable=unreadable.files_of(UnresizableImageError.kind),
            errors=self.errors.compute(),
            coco_capped=self.coco.objects_beyond_the_cap(),
        )


def _make_evaluators(
    model: Detector,
    dataset: Sequence[Sample],
    class_names: Sequence[str] | None,
    coco_annotation_file: str | os.PathLike[str] | None,
) -> _Evaluators:
    """The evaluators of an evaluation of ``model`` on ``dataset`` (see
    :func:`evaluate_detector` for the arguments)."""
    num_classes = _scored_num_classes(model, class_names)
    own = _detection_proposals(model)
    # The model's own limit too where it keeps more (a crowded set's recipe raises it):
    # the recall its detections see, not 1000's.
    limits = RECALL_LIMITS if own is None or own <= RECALL_LIMITS[-1] else (*RECALL_LIMITS, own)
    proposals = ProposalRecallEvaluator(limits)
    return _Evaluators(
        voc=VOCEvaluator(num_classes, class_names=class_names),
        coco=_coco_evaluator(model, dataset, num_classes, class_names, coco_annotation_file),
        errors=ErrorBreakdownEvaluator(num_classes, class_names=class_names),
        proposals=proposals,
        coco_ids_by_index=coco_annotation_file is None,
        head_proposals=own or max(proposals.limits),
    )


def _scored_num_classes(model: Detector, class_names: Sequence[str] | None) -> int:
    """The classes scored, the background included: the model's, and those of
    ``class_names`` after them, which the data has and the model lacks (never found)."""
    num_classes = int(model.num_classes)
    if class_names is None:
        return num_classes
    return max(num_classes, len(class_names) + 1)


def _coco_evaluator(
    model: Detector,
    dataset: Sequence[Sample],
    num_classes: int,
    class_names: Sequence[str] | None,
    coco_annotation_file: str | os.PathLike[str] | None,
) -> COCOEvaluator:
    """The COCO AP evaluator of the targets, or of ``coco_annotation_file``, refused
    where its categories are not the ``num_classes`` scored or its file names not the
    dataset's."""
    if coco_annotation_file is None:
        return COCOEvaluator(num_classes, class_names=class_names)
    category_ids = getattr(dataset, "label_to_category_id", None)
    # With the dataset's own map its classes may be some of the model's (InClassOrder).
    names = class_names if category_ids is not None else None
    read_before = _read_by(dataset, Path(coco_annotation_file))
    coco = COCOEvaluator.from_coco_json(coco_annotation_file, category_ids, names, read_before)
    if coco.num_classes != num_classes:
        scored = _scored_classes(int(model.num_classes) - 1, class_names)
        raise ValueError(
            f"{coco_annotation_file} has {counted(coco.num_classes - 1, 'category')} but {scored}"
        )
    coco.check_file_names(_image_files(dataset))
    return coco


def _read_by(dataset: object, file: Path) -> bool:
    """Whether ``dataset``, or a dataset it wraps, is the reader of the COCO ``file``,
    which warned of its annotations when it was opened."""
    while dataset is not None:
        read = getattr(dataset, "annotation_file", None)
        if isinstance(read, Path):
            return read.is_file() and file.is_file() and read.samefile(file)
        dataset = getattr(dataset, "dataset", None)
    return False


@contextmanager
def _in_eval_mode(model: Detector) -> Iterator[None]:
    """``model`` in eval mode for the block, then back in the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _score_batches(
    model: Detector,
    loader: Iterable[Batch],
    evaluators: _Evaluators,
    device: str | torch.device,
    unreadable: UnreadableLog,
    progress: bool,
) -> int:
    """Run ``model`` over ``loader``'s batches, feeding ``evaluators`` and noting the
    images left out in ``unreadable``; the number of images scored."""
    seen = 0
    for batch in tqdm(loader, desc="evaluate", unit="batch", disable=not progress):
        unreadable.note(batch.unreadable, "evaluate")
        images, targets = batch
        if not images:
            continue
        detections, proposals = model.detect_with_proposals(
            [image.to(device) for image in images], proposal_limit=evaluators.proposal_limit
        )
        detections = [_to_cpu(d) for d in detections]
        evaluators.update(seen, detections, [_to_cpu(p) for p in proposals], targets)
        seen += len(images)
    return seen


def _scored_classes(model_classes: int, class_names: Sequence[str] | None) -> str:
    """What the classes scored are, for an error: the model's ``model_classes``, and the
    ``class_names`` after them that the data has and the model lacks."""
    extra = list(class_names or ())[model_classes:]
    if not extra:
        return f"the model predicts {counted(model_classes, 'class')}"
    return (
        f"the model predicts {counted(model_classes, 'class')}, and the data has "
        f"{len(extra)} more, "
        f"{extra}: {model_classes + len(extra)} classes are scored"
    )


def _image_files(dataset: Sequence[Sample]) -> list[tuple[int, str]]:
    """``(image_id, file name)`` of each image of a reader that knows both (its targets'
    ``image_id``, its ``image_files``), read without decoding an image; else none."""
    files = getattr(dataset, "image_files", None)
    target = getattr(dataset, "target", None)
    if files is None or target is None:
        return []
    pairs = []
    for index, file in enumerate(files):
        image_id = target(index).get("image_id")
        if image_id is not None:
            pairs.append((int(image_id), Path(file).name))
    return pairs


def _detection_proposals(model: Detector) -> int | None:
    """The proposals per image the model's detections use: its ``proposals_per_image``
    where it says (a detector standing in for a model: ``None`` where its detections
    use no one image's, as windows' do), else its config's where it has one."""
    if hasattr(model, "proposals_per_image"):
        return model.proposals_per_image
    config = getattr(model, "config", None)
    return None if config is None else int(config.rpn.post_nms_top_n_test)


def _to_cpu(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    return {key: value.detach().cpu() for key, value in tensors.items()}


def write_figures(path: str | os.PathLike[str], figures: Mapping[str, float], indent: int) -> None:
    """Write ``figures`` to ``path`` as JSON (its folder created), an undefined one (NaN,
    e.g. a class without objects: no JSON number) as ``null``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    defined = {name: None if math.isnan(value) else value for name, value in figures.items()}
    path.write_text(json.dumps(defined, indent=indent) + "\n")


def _fmt_count(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.0f}"


def _fmt(value: float) -> str:
    return "  n/a" if math.isnan(value) else f"{value:.3f}"
