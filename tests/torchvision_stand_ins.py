"""Stand-ins for torchvision's ``Matcher``, ``BoxCoder`` and
``BalancedPositiveNegativeSampler``, which tests set on the model
without torchvision installed: their arguments and attributes, under their module and
name (``torchvision.models.detection._utils``)."""

import math

TORCHVISION_UTILS = "torchvision.models.detection._utils"
# torchvision's clamp of tw and th before the exponential.
CLIP = math.log(1000.0 / 16)


class TorchvisionMatcher:
    """torchvision's ``Matcher``."""

    BELOW_LOW_THRESHOLD, BETWEEN_THRESHOLDS = -1, -2

    def __init__(self, high_threshold, low_threshold, allow_low_quality_matches=False):
        self.high_threshold, self.low_threshold = high_threshold, low_threshold
        self.allow_low_quality_matches = allow_low_quality_matches


class TorchvisionBoxCoder:
    """torchvision's ``BoxCoder``."""

    def __init__(self, weights, bbox_xform_clip=CLIP):
        self.weights, self.bbox_xform_clip = weights, bbox_xform_clip


class TorchvisionBalancedPositiveNegativeSampler:
    """torchvision's ``BalancedPositiveNegativeSampler``, called with the matched indices
    alone."""

    def __init__(self, batch_size_per_image, positive_fraction):
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction

    def __call__(self, matched_idxs):
        raise NotImplementedError("the stand-in only carries torchvision's settings")


for stand_in in (
    TorchvisionMatcher,
    TorchvisionBoxCoder,
    TorchvisionBalancedPositiveNegativeSampler,
):
    stand_in.__module__ = TORCHVISION_UTILS
    stand_in.__qualname__ = stand_in.__name__.removeprefix("Torchvision")
