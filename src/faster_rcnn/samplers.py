"""Drawing a balanced training batch from labelled candidates (anchors or RoIs).

Every sampler has one signature, ``sampler(labels, keys, generator)``: per image the
candidates' labels (1 positive, 0 negative, -1 ignored) and, for samplers that need them,
per-candidate keys (objectness logits to rank negatives by difficulty, matched object
indices to spread positives over objects); it returns per image a mask of the sampled
positives and one of the sampled negatives.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from .config import RPNConfig, check_setting


class BalancedPositiveNegativeSampler:
    """Draws a fixed-size batch with at most a given fraction of positives.

    Positives are taken at random up to ``batch_size_per_image * positive_fraction``; the
    rest of the batch is filled with random negatives (the paper's 256 anchors, up to
    1:1). Randomness comes from ``generator``; with ``None`` the global generator is used in
    exactly torchvision's order of calls, so a shared seed gives the same sample.

    The other samplers change how positives or negatives are chosen
    (:meth:`choose_positives`, :meth:`choose_negatives`), never how many; one that
    chooses by ``keys`` says why it needs them in ``keys_needed``.
    """

    keys_needed: str | None = None
    # The head's target creator that draws its RoIs with this sampler, set by it
    # (:class:`~faster_rcnn.roi_heads.proposal_targets.ProposalTargetCreator`), whose
    # jittered GT boxes a batch must hold; None for the RPN's.
    target_creator: Any = None

    def __init__(self, batch_size_per_image: int, positive_fraction: float) -> None:
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction

    def __setattr__(self, name: str, value: object) -> None:
        # torchvision's users set them on the built model
        # (``model.roi_heads.fg_bg_sampler.positive_fraction = 0.5``): checked by the
        # config's rules, which both stages' configs share, and by the head's against
        # its GT jitter.
        if name in ("batch_size_per_image", "positive_fraction"):
            check_setting(RPNConfig, name, value, f"fg_bg_sampler.{name}")
        creator = self.target_creator
        if name == "batch_size_per_image" and creator is not None and creator.fg_bg_sampler is self:
            creator.check_batch_size(value)
        super().__setattr__(name, value)

    def sample_counts(self, num_positive: int, num_negative: int) -> tuple[int, int]:
        """How many positives and negatives to draw from the available ones."""
        num_pos = min(int(self.batch_size_per_image * self.positive_fraction), num_positive)
        num_neg = min(self.batch_size_per_image - num_pos, num_negative)
        return num_pos, num_neg

    def __call__(
        self,
        labels: list[Tensor],
        keys: list[Tensor] | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Sample each image's batch.

        Args:
            labels: per image, ``(N_i,)`` labels: >= 1 positive, 0 negative, -1 ignored.
            keys: per image, ``(N_i,)`` what the sampler chooses by (unused here).
            generator: random source; ``None`` uses the global one.

        Returns:
            Two lists of ``(N_i,)`` uint8 masks per image: the sampled positives and the
            sampled negatives.
        """
        if keys is None and self.keys_needed:
            raise ValueError(self.keys_needed)
        pos_masks, neg_masks = [], []
        per_image = [None] * len(labels) if keys is None else keys
        for labels_per_image, keys_per_image in zip(labels, per_image, strict=True):
            positive = torch.where(labels_per_image >= 1)[0]
            negative = torch.where(labels_per_image == 0)[0]
            num_pos, num_neg = self.sample_counts(positive.numel(), negative.numel())
            pos_idx = self.choose_positives(
                positive, labels_per_image[positive], keys_per_image, num_pos, generator
            )
            neg_idx = self.choose_negatives(negative, keys_per_image, num_neg, generator)
            pos_masks.append(_index_mask(labels_per_image, pos_idx))
            neg_masks.append(_index_mask(labels_per_image, neg_idx))
        return pos_masks, neg_masks

    def choose_positives(
        self,
        positive: Tensor,
        classes: Tensor,
        keys: Tensor | None,
        k: int,
        generator: torch.Generator | None,
    ) -> Tensor:
        """``k`` of the positive candidates (indices ``positive``, labels ``classes``), at
        random."""
        return positive[_random_subset(positive.numel(), k, positive.device, generator)]

    def choose_negatives(
        self, negative: Tensor, keys: Tensor | None, k: int, generator: torch.Generator | None
    ) -> Tensor:
        """``k`` of the negative candidates (indices ``negative``), at random."""
        return negative[_random_subset(negative.numel(), k, negative.device, generator)]


class HardNegativeSampler(BalancedPositiveNegativeSampler):
    """Balanced sampling that keeps the hardest negatives instead of random ones.

    Positives are drawn at random exactly as by :class:`BalancedPositiveNegativeSampler`
    (same counts, same random draws for them); the negatives are the ones with the highest
    objectness loss, ``softplus(logit)`` (binary cross-entropy against label 0), ties
    going to the lower index. ``keys`` are per image the ``(N_i,)`` objectness logits (not
    differentiated).

    Args:
        batch_size_per_image: anchors sampled per image.
        positive_fraction: at most this fraction of them positive.
    """

    keys_needed = "hard negative mining needs the candidates' scores"

    def choose_negatives(
        self, negative: Tensor, keys: Tensor | None, k: int, generator: torch.Generator | None
    ) -> Tensor:
        """The ``k`` negatives with the highest logits."""
        assert keys is not None
        # softplus(logit), the loss of a negative, increases with the logit: sorting the
        # logits ranks by loss without softplus's rounding ties at the extremes.
        negative_logits = keys.detach().reshape(-1)[negative]
        hardest = torch.sort(negative_logits, descending=True, stable=True).indices
        return negative[hardest[:k]]


class ObjectBalancedSampler(BalancedPositiveNegativeSampler):
    """Balanced sampling whose positives are spread evenly over the objects.

    Random sampling draws each object's positives in proportion to how many candidates
    overlap it, and large objects overlap many more proposals than small ones: in a
    crowded image a small object may get no positive RoI at all. Here the objects take
    turns (Libra R-CNN's instance-balanced sampling, Pang et al. 2019): one random positive
    of each object, in random order, then a second of each, until the positive quota is
    filled, so the counts of two objects differ by at most one unless one ran out. The
    number of positives and the negatives are as in
    :class:`BalancedPositiveNegativeSampler`. ``keys`` are per image the ``(N_i,)`` int64
    index of the object each candidate is matched to (read for the positives only).

    Args:
        batch_size_per_image: candidates sampled per image.
        positive_fraction: at most this fraction of them positive.
    """

    keys_needed = "object-balanced sampling needs each candidate's object"

    def choose_positives(
        self,
        positive: Tensor,
        classes: Tensor,
        keys: Tensor | None,
        k: int,
        generator: torch.Generator | None,
    ) -> Tensor:
        """``k`` positives, taking turns as :meth:`turns_taken` says."""
        assert keys is not None
        if k >= positive.numel():
            return positive
        order = _random_subset(positive.numel(), positive.numel(), positive.device, generator)
        return positive[self.turns_taken(classes, keys[positive], order, k)]

    def turns_taken(self, classes: Tensor, objects: Tensor, order: Tensor, k: int) -> Tensor:
        """``k`` indices into the positives ``(n,)`` of ``classes`` and ``objects``, the
        objects taking turns, each object's candidates in ``order`` (a random permutation).
        """
        return _take_turns(objects, order, k)


class ClassBalancedSampler(ObjectBalancedSampler):
    """Object-balanced sampling whose positives are first spread over the classes.

    The classes of an image take turns, and within a class its objects take turns (as
    :class:`ObjectBalancedSampler`'s). With ``share_exponent`` 0 the classes' turns come
    equally often: one positive of each class, then a second of each, until the quota is
    filled, so a rare class's few objects get as many positive RoIs as a common class's
    many, where object-balanced sampling gives them their share of the objects (an image
    of 140 cells and 8 platelets: 5 % of the positives). Otherwise a class with ``n``
    objects in the image takes its turns ``n ** share_exponent`` times as often (stride
    scheduling): 0.5 gives the 140 cells 81 % of the turns and the 8 platelets 19 %; 1
    gives each object an even share again. The counts and negatives are as in
    :class:`BalancedPositiveNegativeSampler`; ``keys`` are as for
    :class:`ObjectBalancedSampler`.

    Args:
        batch_size_per_image: candidates sampled per image.
        positive_fraction: at most this fraction of them positive.
        share_exponent: in [0, 1], how a class's share of the turns grows with its
            objects.
    """

    def __init__(
        self, batch_size_per_image: int, positive_fraction: float, share_exponent: float = 0.0
    ) -> None:
        super().__init__(batch_size_per_image, positive_fraction)
        if not 0.0 <= share_exponent <= 1.0:
            raise ValueError(f"share_exponent must be in [0, 1], got {share_exponent}")
        self.share_exponent = share_exponent

    def turns_taken(self, classes: Tensor, objects: Tensor, order: Tensor, k: int) -> Tensor:
        """``k`` indices, the classes taking turns along each class's candidates in the
        order its objects take turns in."""
        object_turn = _turns(objects, order)
        by_object_turn = order[torch.sort(object_turn[order], stable=True).indices]
        # Class c's j-th turn is due at (j + 1) / n_c ** exponent.
        objects_of_class = torch.bincount(classes[object_turn == 0])[classes]
        rate = objects_of_class.float() ** self.share_exponent
        return _take_turns(classes, by_object_turn, k, rate)


# torchvision's sampler (torchvision.models.detection._utils): its class's module and
# name; it is converted where it is set (:func:`from_torchvision_sampler`).
_TORCHVISION_SAMPLER = ("torchvision.models.detection._utils", "BalancedPositiveNegativeSampler")


def from_torchvision_sampler(sampler: Any) -> Any:
    """torchvision's ``BalancedPositiveNegativeSampler(batch_size_per_image,
    positive_fraction)`` as this package's, which draws its batch alike (the samplers'
    signature is not torchvision's); any other sampler as it is."""
    if (type(sampler).__module__, type(sampler).__qualname__) != _TORCHVISION_SAMPLER:
        return sampler
    return BalancedPositiveNegativeSampler(sampler.batch_size_per_image, sampler.positive_fraction)


def sampler_kind(
    sampler: object, kinds: Mapping[str, Callable[[int, float], BalancedPositiveNegativeSampler]]
) -> str | None:
    """The name among ``kinds`` (a config's ``sampler`` values, each making a sampler of
    a batch size and a positive fraction) of the kind ``sampler`` is: the one making a
    sampler of its class and settings; ``None`` for a sampler no config describes."""
    if not isinstance(sampler, BalancedPositiveNegativeSampler):
        return None
    for name, make in kinds.items():
        made = make(sampler.batch_size_per_image, sampler.positive_fraction)
        if type(made) is type(sampler) and _settings(made) == _settings(sampler):
            return name
    return None


def _settings(sampler: BalancedPositiveNegativeSampler) -> dict[str, Any]:
    """A sampler's attributes but the target creator that draws with it."""
    return {name: value for name, value in vars(sampler).items() if name != "target_creator"}


def _random_subset(
    n: int, k: int, device: torch.device, generator: torch.Generator | None
) -> Tensor:
    """``k`` distinct random indices in ``[0, n)``."""
    if generator is None:
        return torch.randperm(n, device=device)[:k]
    return torch.randperm(n, generator=generator, device=generator.device)[:k].to(device)


def _index_mask(like: Tensor, indices: Tensor) -> Tensor:
    mask = torch.zeros_like(like, dtype=torch.uint8)
    mask[indices] = 1
    return mask


def _turns(groups: Tensor, order: Tensor) -> Tensor:
    """Per candidate, its turn within its group (0 for the group's first) when each
    group's candidates come in ``order``, a permutation of the candidates ``(n,)``."""
    n = groups.numel()
    ordered = groups[order]
    by_group = torch.sort(ordered, stable=True).indices  # each group's run keeps the order
    counts = torch.unique_consecutive(ordered[by_group], return_counts=True)[1]
    starts = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    turns = torch.empty_like(by_group)
    turns[order[by_group]] = torch.arange(n, device=groups.device) - starts
    return turns


def _take_turns(groups: Tensor, order: Tensor, k: int, rate: Tensor | None = None) -> Tensor:
    """``k`` indices into ``groups`` ``(n,)``, one from each group in turn, each group's
    candidates coming in ``order`` (a permutation): the first of every group, in that
    order, then the second of every group, and so on. With a per-candidate ``rate``
    ``(n,)`` a group's ``j``-th turn is due at ``(j + 1) / rate`` instead (stride
    scheduling), ties in ``order``."""
    due = _turns(groups, order)[order] + 1
    if rate is not None:
        due = due / rate[order]
    return order[torch.sort(due, stable=True).indices[:k]]
