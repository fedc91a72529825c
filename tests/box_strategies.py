"""Hypothesis strategies for the box operators' tests (NMS, Soft-NMS)."""

from __future__ import annotations

import torch
from hypothesis import strategies as st

# Boxes on a coarse grid, drawn from a small pool: many exact duplicates, touching and
# nested boxes, and some degenerate ones.
corner = st.integers(0, 6).map(float)
pool_box = st.tuples(corner, corner, st.integers(0, 4), st.integers(0, 4)).map(
    lambda b: (b[0], b[1], b[0] + b[2], b[1] + b[3])
)


@st.composite
def detections(
    draw: st.DrawFn, distinct_scores: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Up to 40 ``(N, 4)`` float64 boxes from the pool, ``(N,)`` float64 scores and
    ``(N,)`` int64 categories in ``0..2``. Scores come from a small set (many ties), or,
    with ``distinct_scores``, are all different."""
    pool = draw(st.lists(pool_box, min_size=1, max_size=12))
    n = draw(st.integers(0, 40))
    boxes = [pool[draw(st.integers(0, len(pool) - 1))] for _ in range(n)]
    values = st.floats(0.01, 1.0) if distinct_scores else st.sampled_from([0.1, 0.5, 0.7, 0.9])
    scores = draw(st.lists(values, min_size=n, max_size=n, unique=distinct_scores))
    categories = draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    return (
        torch.tensor(boxes, dtype=torch.float64).reshape(n, 4),
        torch.tensor(scores, dtype=torch.float64),
        torch.tensor(categories, dtype=torch.int64),
    )
