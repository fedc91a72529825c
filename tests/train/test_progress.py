"""The progress bar's running means."""

import math
from collections import deque

from faster_rcnn.train.progress import running_means


def test_running_means_leave_skipped_steps_out():
    records = deque(
        [
            {"loss_classifier": 1.0, "loss": 3.0},
            {"loss_classifier": math.nan, "loss": math.inf},  # a skipped step
            {"loss_classifier": 0.5, "loss": 2.0},
        ]
    )
    assert running_means(records) == {"classifier": "0.750", "loss": "2.500"}
    assert running_means(deque([{"loss": math.nan}])) == {"loss": "nan"}
