"""What tests of work kept to one thread (:func:`faster_rcnn.host_cpus.one_thread`) see."""

from __future__ import annotations

from typing import Any

import pytest
import torch


def threads_at_calls(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[int]:
    """The list that PyTorch's thread count is appended to at each call of ``owner.name``
    (a module's function or a class's method), patched for the test."""
    seen: list[int] = []
    original = getattr(owner, name)

    def recording(*args: Any, **kwargs: Any) -> Any:
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, recording)
    return seen
