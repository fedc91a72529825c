"""A split's labels in another split's class order, matched by name.

A COCO file lists its own categories, so the splits of one dataset need not agree: a
test file may list only the classes its images hold, or number them in another order
(one tool's export per split). Labels are the place of a class in ``class_names``, so
such a split read alone would give a class the label another split gives another class.
:class:`InClassOrder` renumbers its labels to the training split's (or a model's) class
order by name; a class the split lacks then has no box in it, and no category id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor

from .dataset import DetectionDataset, Sample, Target, TransparentWrapper, target_of


def takes_class_order(found: Sequence[str], class_names: Sequence[str]) -> bool:
    """Whether a split with classes ``found`` can be read in the order ``class_names``:
    each class of it is among those, once."""
    return len(set(found)) == len(found) and set(found) <= set(class_names)


class InClassOrder(TransparentWrapper):
    """``dataset`` with its labels renumbered to ``class_names`` by name.

    Args:
        dataset: any detection dataset whose ``class_names`` are distinct and among
            ``class_names`` (:func:`takes_class_order`).
        class_names: the class of label ``i + 1`` is ``class_names[i]``.

    Attributes:
        label_to_category_id: the wrapped dataset's, for the labels of its classes; a
            class it lacks has no category id. Absent where the dataset has none.
        category_id_to_label: its inverse.
    """

    def __init__(self, dataset: DetectionDataset, class_names: Sequence[str]) -> None:
        super().__init__(dataset)
        if not takes_class_order(dataset.class_names, class_names):
            raise ValueError(
                f"classes {list(dataset.class_names)} cannot be read as {list(class_names)}"
            )
        self._class_names = tuple(class_names)
        label_of = {name: k + 1 for k, name in enumerate(class_names)}
        # Old label (0 for the background) -> new label.
        self._new_label = torch.tensor([0] + [label_of[name] for name in dataset.class_names])
        category_ids = getattr(dataset, "label_to_category_id", None)
        if category_ids is not None:
            self.label_to_category_id = {
                label_of[name]: category_ids[k + 1] for k, name in enumerate(dataset.class_names)
            }
            self.category_id_to_label = {c: label for label, c in self.label_to_category_id.items()}

    @property
    def class_names(self) -> tuple[str, ...]:
        """The class order the labels follow."""
        return self._class_names

    @property
    def num_classes(self) -> int:
        """Classes including background."""
        return len(self._class_names) + 1

    def __getitem__(self, index: int) -> Sample:
        image, target = self.dataset[index]
        return image, self._renumbered(target)

    def target(self, index: int) -> Target:
        """The wrapped target of item ``index`` (read as cheaply as it allows),
        renumbered."""
        return self._renumbered(target_of(self.dataset, index))

    def _renumbered(self, target: Target) -> Target:
        labels = cast(Tensor, target["labels"])
        return {**target, "labels": self._new_label[labels]}
