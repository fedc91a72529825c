"""Matching predictions (anchors or proposals) to ground truth by IoU bands.

Both stages of Faster R-CNN label their candidates the same way: each is matched to the
ground-truth box it overlaps most, and the IoU of that match falls in one of a few bands,
each with a label. The bands are data (detectron2's design), so the RPN's rule and the
Fast R-CNN head's are two settings of one :class:`Matcher`:

- RPN (paper): ``thresholds=(0.3, 0.7), labels=(0, -1, 1)``: below 0.3 negative, 0.3 to
  0.7 ignored, 0.7 and above positive; plus each GT box's best anchors (rule (i)).
- Fast R-CNN head (paper): ``thresholds=(0.1, 0.5), labels=(-1, 0, 1)``: below 0.1
  ignored, background in ``[0.1, 0.5)``, foreground from 0.5 (torchvision: 0 instead of
  0.1, so nothing is ignored).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from .config import RoIHeadsConfig, RPNConfig, check_setting
from .counted import counted

POSITIVE, NEGATIVE, IGNORED = 1, 0, -1
# The RPN's IoU bands: negative below bg_iou_thresh, ignored, positive from fg_iou_thresh.
ANCHOR_BANDS = (NEGATIVE, IGNORED, POSITIVE)
# The head's IoU bands: ignored below bg_iou_thresh_lo, background, ignored, foreground
# from fg_iou_thresh.
PROPOSAL_BANDS = (IGNORED, NEGATIVE, IGNORED, POSITIVE)
_BAND_NAMES = {POSITIVE: "positive", NEGATIVE: "negative", IGNORED: "ignored"}
# A stage's matcher (of its bands): the config section and fields of its settings, its
# band boundaries lowest first, then the RPN's floor of rule (i).
STAGE_FIELDS: dict[tuple[int, ...], tuple[type, tuple[str, ...]]] = {
    ANCHOR_BANDS: (RPNConfig, ("bg_iou_thresh", "fg_iou_thresh", "low_quality_min_iou")),
    PROPOSAL_BANDS: (RoIHeadsConfig, ("bg_iou_thresh_lo", "bg_iou_thresh_hi", "fg_iou_thresh")),
}


class Matcher:
    """Assigns each prediction its best ground-truth box and the label of that IoU's band.

    Band ``i`` is ``[thresholds[i - 1], thresholds[i])`` (the first open below, the last
    open above) and gets ``labels[i]``.

    With ``allow_low_quality_matches`` every prediction that reaches the highest IoU any
    prediction has with some GT box is positive too (ties included), so that each GT box
    gets at least one positive even when no anchor reaches the top band (the paper's rule
    (i)). Such a prediction keeps its own best GT box, as in torchvision and
    py-faster-rcnn. A best IoU of 0 makes no match: a GT box that no prediction overlaps
    (a small box by the border when border anchors are left out) would otherwise tie with
    every prediction and make them all positive, as it does in those codebases.

    Args:
        thresholds: ascending IoU band boundaries; a stage's (:data:`STAGE_FIELDS`) as its
            config fields take them.
        labels: one label per band (``len(thresholds) + 1``): 1 positive, 0 negative,
            -1 ignored.
        allow_low_quality_matches: apply rule (i).
        low_quality_min_iou: rule (i) applies to a GT box only when its best IoU is at
            least this (and above 0); mmdetection's ``min_pos_iou``.
        best_iou_only: where a matcher that labels from each prediction's best IoU alone
            (:meth:`match_best`) is set (``"roi_heads.proposal_matcher"``): rule (i) is
            refused there, when given or set later (:func:`refuse_low_quality_matches`);
            ``None`` takes it.
    """

    def __init__(
        self,
        thresholds: Sequence[float],
        labels: Sequence[int],
        allow_low_quality_matches: bool = False,
        low_quality_min_iou: float = 0.0,
        best_iou_only: str | None = None,
    ) -> None:
        self.labels = labels
        self._require_boundaries(thresholds)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.best_iou_only = best_iou_only
        self.allow_low_quality_matches = allow_low_quality_matches
        self.low_quality_min_iou = float(low_quality_min_iou)

    def __setattr__(self, name: str, value: object) -> None:
        # torchvision's users set proposal_matcher.allow_low_quality_matches: refused here
        # where matching would refuse it, not in a training step later.
        if name == "allow_low_quality_matches":
            check_setting(RPNConfig, name, value, f"proposal_matcher.{name}")
            if value:
                refuse_low_quality_matches(getattr(self, "best_iou_only", None))
        # ... and its IoUs (low_quality_min_iou, high_threshold, low_threshold), by the
        # config's rules, against the others as they are (_check_setting).
        if name == "low_quality_min_iou":
            self._check_setting(len(self.thresholds), value, f"proposal_matcher.{name}")
        if name == "thresholds":
            self._check_thresholds(value)
        if name == "labels":
            value = self._checked_labels(value)
        super().__setattr__(name, value)

    def _require_boundaries(self, thresholds: object) -> None:
        """Refuse band boundaries that are not a sequence (a bare IoU failed in ``len()``)."""
        count = len(self.labels) - 1
        requirement = (
            f"a tuple of {counted(count, 'IoU')}, the boundaries of its bands {self.labels}"
        )
        _require_sequence(thresholds, "proposal_matcher.thresholds", requirement)

    def _checked_labels(self, labels: object) -> tuple[int, ...]:
        """``labels`` set (or given) as the bands' labels, as a tuple. A matcher of a
        stage's bands (:data:`STAGE_FIELDS`) keeps them: no config describes another
        stage's matcher, or one of other bands, so ``model.config`` would keep the old
        IoUs. Another matcher takes one label per band of its thresholds."""
        where = "proposal_matcher.labels"
        _require_sequence(labels, where, "a tuple of labels, one per band")
        if not set(labels) <= {POSITIVE, NEGATIVE, IGNORED}:
            raise ValueError(
                f"{where} = {labels!r}: must be 1, 0 or -1 (positive, negative, ignored)"
            )
        labels = tuple(int(label) for label in labels)
        kept = getattr(self, "labels", None)
        if kept in STAGE_FIELDS and labels != kept:
            section = STAGE_FIELDS[kept][0].__name__
            raise ValueError(
                f"{where} = {labels!r}: must be {kept}, the bands {section} describes "
                f"({', '.join(_BAND_NAMES[label] for label in kept)})"
            )
        thresholds = getattr(self, "thresholds", None)
        if thresholds is not None and len(labels) != len(thresholds) + 1:
            raise ValueError(
                f"{where} = {labels!r}: must be {len(thresholds) + 1} labels, one per band of "
                f"its {len(thresholds)} thresholds"
            )
        return labels

    def _check_thresholds(self, thresholds: Sequence[float]) -> None:
        """Refuse band boundaries set whole (``proposal_matcher.thresholds = (0.3, 0.7)``,
        or a matcher made) that are not one fewer than the bands, or that the config
        fields they are refuse, each against the others given and the floor of rule (i):
        out of ``[0, 1]`` or of order. Those of no config field must be ascending."""
        self._require_boundaries(thresholds)
        if len(thresholds) + 1 != len(self.labels):
            raise ValueError(
                f"{len(thresholds)} thresholds make {len(thresholds) + 1} bands, "
                f"got {len(self.labels)} labels"
            )
        # The highest first: a boundary above another's or the floor's is the one named.
        for index in reversed(range(len(thresholds))):
            where = f"proposal_matcher.thresholds[{index}]"
            self._check_setting(index, thresholds[index], where, thresholds)
        _check_ascending(thresholds)

    def _check_setting(
        self, index: int, value: object, where: str, thresholds: Sequence[float] | None = None
    ) -> None:
        """Refuse ``value`` set as ``where`` for band boundary ``index``
        (``len(thresholds)``: rule (i)'s floor) where the config field it is refuses it,
        with the matcher's other settings as they are, or with ``thresholds`` being set
        (:meth:`config_settings`): out of ``[0, 1]`` or of order. Of a matcher of no
        stage's bands, or as the head's floor (no config field), any finite number is
        taken."""
        stage = STAGE_FIELDS.get(self.labels)
        if stage is None or index >= len(stage[1]):
            _check_iou(value, where)
            return
        section, fields = stage
        current = self.config_settings(thresholds)
        del current[fields[index]]
        check_setting(section, fields[index], value, where, current)

    def config_settings(self, thresholds: Sequence[float] | None = None) -> dict[str, float]:
        """The fields of its stage's config section that this matcher's IoUs are
        (:data:`STAGE_FIELDS`), with their values: the band boundaries (``thresholds`` in
        place of its own, where given), then the RPN's floor of rule (i). Empty for a
        matcher of no stage's bands."""
        stage = STAGE_FIELDS.get(self.labels)
        if stage is None:
            return {}
        fields = stage[1]
        thresholds = self.thresholds if thresholds is None else thresholds
        # No floor yet while the matcher is being made.
        values = (*thresholds, getattr(self, "low_quality_min_iou", 0.0))[: len(fields)]
        return dict(zip(fields, values, strict=True))

    @property
    def high_threshold(self) -> float:
        """torchvision's name for the IoU from which a match is positive: the last band's
        lower bound (both stages' matchers end with their positive band). Set, it moves
        that bound."""
        return self.thresholds[-1]

    @high_threshold.setter
    def high_threshold(self, value: float) -> None:
        self._check_setting(len(self.thresholds) - 1, value, "proposal_matcher.high_threshold")
        self._move_threshold(len(self.thresholds) - 1, value)

    @property
    def low_threshold(self) -> float:
        """torchvision's name for the IoU below which a match is negative: the negative
        band's upper bound (the RPN's ``bg_iou_thresh``, the head's ``bg_iou_thresh_hi``).
        Set, it moves that bound."""
        return self.thresholds[self._negative_band()]

    @low_threshold.setter
    def low_threshold(self, value: float) -> None:
        self._check_setting(self._negative_band(), value, "proposal_matcher.low_threshold")
        self._move_threshold(self._negative_band(), value)

    def _negative_band(self) -> int:
        """The index of the negative band, which has an upper bound in both stages'
        matchers."""
        bounded = self.labels[: len(self.thresholds)]
        if NEGATIVE not in bounded:
            raise ValueError(f"a matcher of bands {self.labels} has no negative band below another")
        return bounded.index(NEGATIVE)

    def _move_threshold(self, index: int, value: float) -> None:
        """Set band boundary ``index`` to ``value``, the boundaries kept ascending."""
        thresholds = list(self.thresholds)
        thresholds[index] = float(value)
        self.thresholds = tuple(thresholds)

    def __call__(self, match_quality_matrix: Tensor) -> tuple[Tensor, Tensor]:
        """Match predictions to GT boxes.

        Args:
            match_quality_matrix: ``(G, P)`` IoU of every GT box with every prediction.

        Returns:
            ``(P,)`` int64 index of each prediction's best GT box (0 when ``G = 0``), and
            ``(P,)`` int64 labels. With no GT box every IoU counts as 0.
        """
        num_gt, num_pred = match_quality_matrix.shape
        device = match_quality_matrix.device
        if num_gt == 0:
            matches = torch.zeros(num_pred, dtype=torch.int64, device=device)
            return matches, self._band_labels(torch.zeros(num_pred, device=device))
        return self.match_blocks(lambda: iter([(slice(None), match_quality_matrix)]), num_pred)

    def match_blocks(
        self, blocks: Callable[[], Iterator[tuple[slice, Tensor]]], num_pred: int
    ) -> tuple[Tensor, Tensor]:
        """:meth:`__call__` on a ``(G, P)`` matrix given a block of columns at a time, bit
        for bit, so that it is never whole (1000 GT boxes against 550,000 anchors: 2.2 GB
        of IoUs, several times that while :func:`~faster_rcnn.ops.boxes.box_iou` makes
        them).

        Args:
            blocks: makes the matrix's blocks anew at each call: each block's columns and
                its ``(G, C)`` values, ``G >= 1``, every column once. Called once, or twice
                with rule (i) (which needs each GT box's best first).
            num_pred: ``P``.

        Returns:
            What :meth:`__call__` returns for the matrix.
        """
        matched_vals, matches, best_of_gt = self._best_of_blocks(blocks, num_pred)
        labels = self._band_labels(matched_vals)
        if self.allow_low_quality_matches:
            counts = (best_of_gt > 0) & (best_of_gt >= self.low_quality_min_iou)
            for columns, block in blocks():
                is_best = ((block == best_of_gt[:, None]) & counts[:, None]).any(dim=0)
                labels[columns] = labels[columns].masked_fill(is_best, POSITIVE)
        return matches, labels

    @torch.no_grad()
    def _best_of_blocks(
        self, blocks: Callable[[], Iterator[tuple[slice, Tensor]]], num_pred: int
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``(P,)`` each column's maximum and its row (the first of equal ones), and with
        rule (i) ``(G,)`` each row's maximum (else -inf), of the matrix given to
        :meth:`match_blocks`."""
        values = indices = best_of_gt = None
        for columns, block in blocks():
            if values is None:
                # Written in place, as best_box_iou's are: each block's kept apart until the
                # end left the freed blocks' memory in pieces (at 1000 x 100,000 a peak
                # 440 MB higher).
                values = block.new_empty(num_pred)
                indices = torch.empty(num_pred, dtype=torch.int64, device=block.device)
                best_of_gt = block.new_full(block.shape[:1], -math.inf)
            torch.max(block, dim=0, out=(values[columns], indices[columns]))
            if self.allow_low_quality_matches:
                best_of_gt = best_of_gt.maximum(block.amax(dim=1))
        return values, indices, best_of_gt

    def match_best(self, best_iou: Tensor, best_gt: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`__call__` from each prediction's best IoU and GT box alone (see
        :func:`~faster_rcnn.ops.boxes.best_box_iou`), for a matcher without rule (i),
        which needs every IoU.

        Args:
            best_iou: ``(P,)`` each prediction's highest IoU with a GT box.
            best_gt: ``(P,)`` int64 the GT box that gives it.

        Returns:
            What :meth:`__call__` returns for the matrix they came from.
        """
        if self.allow_low_quality_matches:
            raise ValueError("low-quality matches need every IoU: match the IoU matrix")
        return best_gt, self._band_labels(best_iou)

    def match_pairs(
        self, gt: Tensor, pred: Tensor, iou: Tensor, num_gt: int, num_pred: int
    ) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`__call__` on a sparse matrix: the ``(G, P)`` matrix that holds ``iou`` at
        the listed pairs and 0 everywhere else, without making it.

        Args:
            gt: ``(K,)`` int64 GT index of each pair (each pair listed once).
            pred: ``(K,)`` int64 prediction index of each pair.
            iou: ``(K,)`` the pairs' IoU.
            num_gt: ``G``.
            num_pred: ``P``.

        Returns:
            What :meth:`__call__` returns for that matrix, and ``(P,)`` each prediction's
            best IoU.
        """
        best_of_pred = iou.new_zeros(num_pred).scatter_reduce(0, pred, iou, "amax")
        labels = self._band_labels(best_of_pred)
        # Ties go to the first GT box, as max() does on the dense matrix; a prediction
        # whose best is 0 has every GT box tied, so the first.
        at_best = iou == best_of_pred[pred]
        matches = torch.full((num_pred,), num_gt, dtype=torch.int64, device=iou.device)
        matches = matches.scatter_reduce(0, pred[at_best], gt[at_best], "amin")
        matches = matches.masked_fill((best_of_pred == 0) | (matches == num_gt), 0)
        if self.allow_low_quality_matches and num_gt > 0:
            best_of_gt = iou.new_zeros(num_gt).scatter_reduce(0, gt, iou, "amax")
            counts = (best_of_gt > 0) & (best_of_gt >= self.low_quality_min_iou)
            is_best = (iou == best_of_gt[gt]) & counts[gt]
            labels[pred[is_best]] = POSITIVE
        return matches, labels, best_of_pred

    def _band_labels(self, iou: Tensor) -> Tensor:
        """``(P,)`` the label of each IoU's band."""
        boundaries = torch.tensor(self.thresholds, dtype=iou.dtype, device=iou.device)
        band = torch.bucketize(iou, boundaries, right=True)  # thresholds <= iou
        return torch.tensor(self.labels, dtype=torch.int64, device=iou.device)[band]


def _check_iou(value: object, where: str) -> None:
    """Refuse as ``where`` an IoU that is not a finite number, by the rule of the
    config's IoU fields (``RPNConfig.fg_iou_thresh``)."""
    check_setting(RPNConfig, "fg_iou_thresh", value, where)


def _require_sequence(value: object, where: str, requirement: str) -> None:
    """Refuse as ``where`` a value that is not a sequence, as ``requirement`` says it must
    be (``"a tuple of labels, one per band"``)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError(f"{where} = {value!r}: must be {requirement}")


def _check_ascending(thresholds: Sequence[float]) -> None:
    """Refuse band boundaries that are not ascending."""
    if list(thresholds) != sorted(thresholds):
        raise ValueError(f"thresholds must be ascending, got {tuple(thresholds)}")


def refuse_low_quality_matches(where: str | None) -> None:
    """Refuse rule (i) on the matcher set as ``where`` (``"roi_heads.proposal_matcher"``),
    one that labels from each prediction's best IoU alone; ``None`` takes it.

    Raises:
        ValueError: ``where`` is given.
    """
    if where is not None:
        raise ValueError(
            f"{where}.allow_low_quality_matches = True: the head appends every GT box to "
            "its proposals, so each box already has a foreground RoI (itself, IoU 1) and "
            "low-quality matches would add none; leave it False (rpn.proposal_matcher "
            "takes them)"
        )


# torchvision's matcher (torchvision.models.detection._utils.Matcher): its class's module
# and name; it is converted where it is set (:func:`checked_matcher`).
_TORCHVISION_MATCHER = ("torchvision.models.detection._utils", "Matcher")


def checked_matcher(
    matcher: object, labels: Sequence[int], where: str, best_iou_only: bool = False
) -> Matcher:
    """``matcher``, set as ``where`` (``"rpn.proposal_matcher"``), where it is a
    :class:`Matcher` of the bands ``labels``, the only ones the config describes there;
    torchvision's ``Matcher(high_threshold, low_threshold, allow_low_quality_matches)``
    is converted (:func:`from_torchvision_matcher`). With ``best_iou_only`` the matcher
    labels from each prediction's best IoU alone, and refuses rule (i) then and later.

    Raises:
        TypeError: another class (torchvision's ``SSDMatcher`` among them).
        ValueError: a matcher of other bands, or one with rule (i) where
            ``best_iou_only``.
    """
    kind = (type(matcher).__module__, type(matcher).__qualname__)
    if kind == _TORCHVISION_MATCHER:
        matcher = from_torchvision_matcher(matcher, labels)
    if not isinstance(matcher, Matcher):
        raise TypeError(
            f"{where} takes faster_rcnn.matcher.Matcher, got {'.'.join(kind)}: set the "
            f"model's own ({where}.high_threshold, .low_threshold)"
        )
    if matcher.labels != tuple(labels):
        raise ValueError(
            f"{where} must label its bands {tuple(labels)} (1 positive, 0 negative, -1 "
            f"ignored), got {matcher.labels}"
        )
    if best_iou_only:
        if matcher.allow_low_quality_matches:
            refuse_low_quality_matches(where)
        matcher.best_iou_only = where
    return matcher


def from_torchvision_matcher(matcher: Any, labels: Sequence[int]) -> Matcher:
    """torchvision's ``Matcher(high_threshold, low_threshold, allow_low_quality_matches)``
    as a :class:`Matcher` of the bands ``labels``: negative below ``low_threshold``,
    ignored up to ``high_threshold``, positive from there, as torchvision labels both
    stages; each band before the negative one starts and ends at IoU 0, so it holds
    nothing (torchvision's head ignores no proposal for overlapping too little)."""
    empty = (0.0,) * list(labels).index(NEGATIVE)
    thresholds = (*empty, matcher.low_threshold, matcher.high_threshold)
    return Matcher(thresholds, labels, matcher.allow_low_quality_matches)
