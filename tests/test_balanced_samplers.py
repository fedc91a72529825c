"""Object- and class-balanced RoI sampling: positives spread over objects (and classes),
counts as the random sampler's."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from faster_rcnn.models import small_config
from faster_rcnn.ops.boxes import BoxCoder
from faster_rcnn.roi_heads.network import RoIHeads
from faster_rcnn.roi_heads.proposal_targets import ProposalTargetCreator
from faster_rcnn.samplers import (
    BalancedPositiveNegativeSampler,
    ClassBalancedSampler,
    ObjectBalancedSampler,
)


def test_a_small_object_gets_its_share_of_a_crowded_quota() -> None:
    # 60 positives on object 0 (a large one), 2 on object 1 (a small one), 40 negatives;
    # a quota of 8 positives takes both of object 1's and 6 of object 0's, every draw.
    labels = torch.cat([torch.ones(62, dtype=torch.int64), torch.zeros(40, dtype=torch.int64)])
    objects = torch.cat([torch.zeros(60), torch.ones(2), torch.zeros(40)]).long()
    sampler = ObjectBalancedSampler(batch_size_per_image=16, positive_fraction=0.5)
    for seed in range(20):
        (pos,), (neg,) = sampler([labels], [objects], torch.Generator().manual_seed(seed))
        assert torch.bincount(objects[pos.bool()], minlength=2).tolist() == [6, 2]
        assert int(neg.sum()) == 8 and not bool((pos & neg).any())
        assert bool((labels[neg.bool()] == 0).all())


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 12), min_size=1, max_size=6),
    negatives=st.integers(0, 30),
    batch=st.integers(1, 40),
    seed=st.integers(0, 10_000),
)
def test_counts_per_object_differ_by_at_most_one_unless_exhausted(
    sizes: list[int], negatives: int, batch: int, seed: int
) -> None:
    objects = torch.cat([torch.full((n,), i) for i, n in enumerate(sizes)] + [torch.zeros(0)])
    objects = torch.cat([objects, torch.zeros(negatives)]).long()
    labels = torch.cat([torch.ones(sum(sizes)), torch.zeros(negatives)]).long()
    generator = torch.Generator().manual_seed(seed)
    (pos,), (neg,) = ObjectBalancedSampler(batch, 0.5)([labels], [objects], generator)
    # The same numbers as random balanced sampling.
    (rpos,), (rneg,) = BalancedPositiveNegativeSampler(batch, 0.5)([labels])
    assert (int(pos.sum()), int(neg.sum())) == (int(rpos.sum()), int(rneg.sum()))
    counts = torch.bincount(objects[pos.bool()], minlength=len(sizes))
    sizes_t = torch.tensor(sizes)
    not_exhausted = counts < sizes_t
    if bool(not_exhausted.any()):
        # An object left with candidates has at least as many as any other, less one.
        assert int(counts.max()) <= int(counts[not_exhausted].min()) + 1


def test_proposal_targets_balance_their_foreground_over_objects() -> None:
    # A large GT box with 40 proposals around it and a small one with 3: random sampling
    # of 8 foreground RoIs would rarely take all three small ones; balanced takes them.
    large, small = torch.tensor([0.0, 0.0, 200.0, 200.0]), torch.tensor([300.0, 300.0, 316, 316])
    shifts = torch.arange(40, dtype=torch.float32)[:, None] * torch.tensor([1.0, 1.0, 1.0, 1.0])
    proposals = torch.cat([large + shifts, small + torch.tensor([[0.0, 0, 1, 1]]).repeat(3, 1)])
    targets = [{"boxes": torch.stack([large, small]), "labels": torch.tensor([1, 2])}]
    creator = ProposalTargetCreator(
        fg_iou_thresh=0.5,
        bg_iou_thresh_hi=0.5,
        bg_iou_thresh_lo=0.0,
        batch_size_per_image=32,
        positive_fraction=0.25,
        box_coder=BoxCoder((10.0, 10.0, 5.0, 5.0)),
        sampler="object_balanced",
    )
    sampled = creator([proposals], targets, torch.Generator().manual_seed(0))
    labels = sampled.labels[0]
    # 8 foreground: the small box's 3 proposals and its GT copy, and 4 of the large one's.
    assert torch.bincount(labels, minlength=3)[1:].tolist() == [4, 4]


def _candidates(classes: list[int], per_object: list[int], negatives: int) -> tuple:
    """Labels and object keys of the candidates of objects ``i`` of class ``classes[i]``,
    each with ``per_object[i]`` candidates, followed by ``negatives`` background ones."""
    objects = torch.cat([torch.full((n,), i) for i, n in enumerate(per_object)])
    labels = torch.cat([torch.full((n,), c) for c, n in zip(classes, per_object, strict=True)])
    objects = torch.cat([objects, torch.zeros(negatives)]).long()
    labels = torch.cat([labels, torch.zeros(negatives)]).long()
    return labels, objects


def test_a_rare_class_gets_as_many_positives_as_a_common_one() -> None:
    # Six cells (class 1) and one platelet (class 2), ten candidates each, 8 positives:
    # the classes take turns, 4 each, and the cells' 4 go to 4 different cells. Object-
    # balanced sampling gives the platelet its turn among 7 objects: 1 or 2.
    labels, objects = _candidates([1, 1, 1, 1, 1, 1, 2], [10] * 7, negatives=40)
    for seed in range(20):
        generator = torch.Generator().manual_seed(seed)
        (pos,), (neg,) = ClassBalancedSampler(16, 0.5)([labels], [objects], generator)
        assert torch.bincount(labels[pos.bool()], minlength=3).tolist() == [0, 4, 4]
        cells = torch.bincount(objects[pos.bool() & (labels == 1)], minlength=6)
        assert sorted(cells.tolist()) == [0, 0, 1, 1, 1, 1]
        assert int(neg.sum()) == 8 and bool((labels[neg.bool()] == 0).all())
        generator = torch.Generator().manual_seed(seed)
        (pos,), _ = ObjectBalancedSampler(16, 0.5)([labels], [objects], generator)
        assert int((labels[pos.bool()] == 2).sum()) in (1, 2)


@settings(max_examples=60, deadline=None)
@given(
    objects=st.lists(st.tuples(st.integers(1, 3), st.integers(1, 8)), min_size=1, max_size=7),
    negatives=st.integers(0, 30),
    batch=st.integers(1, 40),
    seed=st.integers(0, 10_000),
)
def test_counts_per_class_and_per_object_differ_by_at_most_one_unless_exhausted(
    objects: list[tuple[int, int]], negatives: int, batch: int, seed: int
) -> None:
    classes, per_object = [c for c, _ in objects], [n for _, n in objects]
    labels, keys = _candidates(classes, per_object, negatives)
    generator = torch.Generator().manual_seed(seed)
    (pos,), (neg,) = ClassBalancedSampler(batch, 0.5)([labels], [keys], generator)
    (rpos,), (rneg,) = BalancedPositiveNegativeSampler(batch, 0.5)([labels])
    assert (int(pos.sum()), int(neg.sum())) == (int(rpos.sum()), int(rneg.sum()))
    taken = pos.bool()
    by_class = torch.bincount(labels[taken], minlength=4)[1:]
    available = torch.bincount(labels[labels > 0], minlength=4)[1:]
    present = available > 0
    open_classes = present & (by_class < available)
    if bool(open_classes.any()):
        assert int(by_class[present].max()) <= int(by_class[open_classes].min()) + 1
    for c in set(classes):
        members = [i for i, k in enumerate(classes) if k == c]
        counts = torch.bincount(keys[taken & (labels == c)], minlength=len(classes))[members]
        left = counts < torch.tensor(per_object)[members]
        if bool(left.any()):
            assert int(counts.max()) <= int(counts[left].min()) + 1


def test_a_class_takes_turns_in_proportion_to_a_power_of_its_objects() -> None:
    # Nine cells and one platelet, ten candidates each, 20 positives, exponent 0.5: the
    # cells take turns 3 times as often as the platelet (sqrt 9 against sqrt 1), so by
    # turn time 5 the cells have had 15 turns and the platelet 5. The cells' 15 go 1 or 2
    # to each cell.
    labels, objects = _candidates([1] * 9 + [2], [10] * 10, negatives=60)
    for seed in range(20):
        generator = torch.Generator().manual_seed(seed)
        sampler = ClassBalancedSampler(40, 0.5, share_exponent=0.5)
        (pos,), (neg,) = sampler([labels], [objects], generator)
        assert torch.bincount(labels[pos.bool()], minlength=3).tolist() == [0, 15, 5]
        cells = torch.bincount(objects[pos.bool() & (labels == 1)], minlength=9)
        assert sorted(cells.tolist()) == [1] * 3 + [2] * 6
        assert int(neg.sum()) == 20


@settings(max_examples=60, deadline=None)
@given(
    objects=st.lists(st.tuples(st.integers(1, 3), st.integers(1, 8)), min_size=1, max_size=9),
    exponent=st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]),
    batch=st.integers(1, 60),
    seed=st.integers(0, 10_000),
)
def test_no_class_gets_a_full_turn_ahead_of_its_share(
    objects: list[tuple[int, int]], exponent: float, batch: int, seed: int
) -> None:
    # Class c with n_c objects takes its j-th turn at time (j + 1) / n_c ** exponent: when
    # the quota fills at time T, every class has at most T * w_c positives, and a class
    # with candidates left has all its turns due before T: at least T * w_c - 1.
    classes, per_object = [c for c, _ in objects], [n for _, n in objects]
    labels, keys = _candidates(classes, per_object, negatives=10)
    generator = torch.Generator().manual_seed(seed)
    (pos,), _ = ClassBalancedSampler(batch, 0.5, exponent)([labels], [keys], generator)
    (rpos,), _ = BalancedPositiveNegativeSampler(batch, 0.5)([labels])
    assert int(pos.sum()) == int(rpos.sum())
    taken = torch.bincount(labels[pos.bool()], minlength=4)[1:].double()
    available = torch.bincount(labels[labels > 0], minlength=4)[1:]
    weight = torch.bincount(torch.tensor(classes), minlength=4)[1:].double() ** exponent
    present, open_classes = available > 0, taken < available
    for c in torch.where(present)[0]:
        for d in torch.where(open_classes)[0]:
            assert taken[c] / weight[c] <= (taken[d] + 1) / weight[d] + 1e-9


@settings(max_examples=30, deadline=None)
@given(
    classes=st.lists(st.integers(1, 3), min_size=1, max_size=8),
    batch=st.integers(1, 40),
    seed=st.integers(0, 10_000),
)
def test_with_exponent_one_every_object_gets_an_even_share(
    classes: list[int], batch: int, seed: int
) -> None:
    # Objects with equal candidates: exponent 1 gives the counts object-balanced gives.
    labels, keys = _candidates(classes, [6] * len(classes), negatives=30)
    generator = torch.Generator().manual_seed(seed)
    (pos,), _ = ClassBalancedSampler(batch, 0.5, 1.0)([labels], [keys], generator)
    counts = torch.bincount(keys[pos.bool()], minlength=len(classes))
    assert int(counts.max()) - int(counts.min()) <= 1


def test_the_share_exponent_is_checked() -> None:
    with pytest.raises(ValueError, match=r"share_exponent must be in \[0, 1\], got 1.5"):
        ClassBalancedSampler(128, 0.25, share_exponent=1.5)


@settings(max_examples=30, deadline=None)
@given(
    per_object=st.lists(st.integers(1, 10), min_size=1, max_size=6),
    batch=st.integers(1, 40),
    seed=st.integers(0, 10_000),
)
def test_with_one_class_it_is_object_balanced_sampling_draw_for_draw(
    per_object: list[int], batch: int, seed: int
) -> None:
    labels, keys = _candidates([1] * len(per_object), per_object, negatives=20)
    drawn = []
    for sampler in (ClassBalancedSampler(batch, 0.5), ObjectBalancedSampler(batch, 0.5)):
        drawn.append(sampler([labels], [keys], torch.Generator().manual_seed(seed)))
    assert torch.equal(drawn[0][0][0], drawn[1][0][0])
    assert torch.equal(drawn[0][1][0], drawn[1][1][0])


def test_the_config_names_the_heads_sampler() -> None:
    expected = {
        "random": (BalancedPositiveNegativeSampler, None),
        "object_balanced": (ObjectBalancedSampler, None),
        "class_balanced": (ClassBalancedSampler, 0.0),
        "class_sqrt_balanced": (ClassBalancedSampler, 0.5),
    }
    for name, (sampler, exponent) in expected.items():
        config = small_config().replace(roi_heads={"sampler": name})
        chosen = RoIHeads.from_config(config).target_creator.fg_bg_sampler
        assert type(chosen) is sampler
        assert getattr(chosen, "share_exponent", None) == exponent
