"""Object-balanced RoI sampling: positives spread over objects, counts as the random one."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from faster_rcnn.ops.boxes import BoxCoder
from faster_rcnn.roi_heads.proposal_targets import ProposalTargetCreator
from faster_rcnn.samplers import BalancedPositiveNegativeSampler, ObjectBalancedSampler


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
        object_balanced=True,
    )
    sampled = creator([proposals], targets, torch.Generator().manual_seed(0))
    labels = sampled.labels[0]
    # 8 foreground: the small box's 3 proposals and its GT copy, and 4 of the large one's.
    assert torch.bincount(labels, minlength=3)[1:].tolist() == [4, 4]
