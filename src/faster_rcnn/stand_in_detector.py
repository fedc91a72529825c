"""What a detector that runs a model its own way shares with the model it stands in for."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, TypeVar

from torch import Tensor

from .config import FasterRCNNConfig

if TYPE_CHECKING:
    from .model import FasterRCNN

StandIn = TypeVar("StandIn", bound="StandInDetector")


class StandInDetector(ABC):
    """Base of the detectors built around a model that answer its eval-mode calls
    (:class:`~faster_rcnn.test_time_flips.TestTimeFlips`,
    :class:`~faster_rcnn.windowed_detection.WindowedDetection`): its classes, config and
    mode are the model's (``eval`` and ``train`` set the model's), and
    ``detector(images)`` gives the detections of :meth:`detect_with_proposals`, as the
    model's own call does. So one stands in for the model in
    :func:`~faster_rcnn.evaluate.evaluate_detector` and in ``predict``.
    """

    model: FasterRCNN | StandInDetector

    @abstractmethod
    def describe(self) -> str:
        """One line: what runs, and how its results are merged."""

    @abstractmethod
    def detect_with_proposals(
        self, images: list[Tensor], proposal_limit: int | None = None
    ) -> tuple[list[dict[str, Tensor]], list[dict[str, Tensor]]]:
        """Per image, the detections and proposals, as
        :meth:`~faster_rcnn.model.FasterRCNN.detect_with_proposals` gives them."""

    @property
    def num_classes(self) -> int:
        return self.model.num_classes

    @property
    def config(self) -> FasterRCNNConfig:
        return self.model.config

    @property
    def proposals_per_image(self) -> int | None:
        """The proposals an image its detections use, as evaluation reports them: the
        model's (``None`` where they are no one image's)."""
        if isinstance(self.model, StandInDetector):
            return self.model.proposals_per_image
        return int(self.model.config.rpn.post_nms_top_n_test)

    @property
    def training(self) -> bool:
        return self.model.training

    def eval(self: StandIn) -> StandIn:
        self.model.eval()
        return self

    def train(self: StandIn, mode: bool = True) -> StandIn:
        self.model.train(mode)
        return self

    def __call__(self, images: list[Tensor]) -> list[dict[str, Tensor]]:
        """Per image ``{"boxes": (D, 4), "labels": (D,), "scores": (D,)}`` in its pixels."""
        return self.detect_with_proposals(images)[0]
