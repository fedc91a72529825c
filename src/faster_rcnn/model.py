"""The Faster R-CNN detector: backbone -> RPN -> Fast R-CNN head, torchvision's API.

``model(images)`` in eval mode returns, per image, ``{"boxes", "labels", "scores"}`` in
that image's own pixels; in training mode ``model(images, targets)`` returns the four
named losses. The module tree (``backbone``, ``rpn``, ``roi_heads``) and so the
state-dict keys are torchvision's.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from .backbones import build_backbone, check_backbone_matches, check_custom_feature_maps
from .config import FasterRCNNConfig
from .data.dataset import as_float_image
from .image_list import ImageList
from .roi_heads import RoIHeads
from .roi_heads.predictor import predictor_num_classes
from .roi_heads.proposal_targets import ROI_SAMPLERS
from .rpn import RegionProposalNetwork
from .rpn.network import SAMPLERS
from .samplers import BalancedPositiveNegativeSampler, sampler_kind
from .torchvision_heads import (
    GivenHeads,
    check_described,
    layout_difference,
    replaced_heads_config,
)
from .torchvision_options import constructor_form, keywords_with_class_count, pooler_fields
from .transform import ImageTransform
from .validation import (
    float_boxes,
    rgb_image_list,
    validate_image_sizes,
    validate_images,
    validate_targets,
)

# torch.export and TorchScript fail deep inside the network, in dozens of lines: named here.
_NOT_EXPORTABLE = (
    "torch.export cannot trace FasterRCNN's forward, whose proposals and detections vary "
    "in number with the image: export faster_rcnn.export.DetectionGraph(model) on "
    "prepare_graph_inputs(model.transform, images), the fixed-shape graph that "
    "export_onnx and `faster-rcnn export` write"
)
_NOT_SCRIPTABLE = (
    "TorchScript cannot compile FasterRCNN (its Python goes beyond what TorchScript "
    "reads): export it with faster_rcnn.export.export_onnx (`faster-rcnn export`) or "
    "torch.export of faster_rcnn.export.DetectionGraph(model), or run torch.compile(model)"
)


class PreparedBatch(NamedTuple):
    """A checked batch, resized, normalised and padded: what every stage runs on.

    Attributes:
        images: the padded batch and each image's resized size.
        targets: per image, the targets in resized-image pixels (``None`` when none given).
        original_sizes: per image, ``(height, width)`` before resizing, to map detections
            back.
    """

    images: ImageList
    targets: list[dict[str, Tensor]] | None
    original_sizes: list[tuple[int, int]]

    def training_targets(self) -> list[dict[str, Tensor]]:
        """The targets, which a batch prepared for training has.

        Raises:
            ValueError: the batch was prepared without targets.
        """
        if self.targets is None:
            raise ValueError("training needs targets: the batch was prepared without them")
        return self.targets


class FasterRCNN(nn.Module):
    """Faster R-CNN (Ren et al., 2015) with approximate joint training.

    The RPN and the Fast R-CNN head share the backbone's features; in training their
    losses are summed by the caller and the proposals are treated as constants (no
    gradient flows through the proposal coordinates), the paper's approximate joint
    training.

    Args:
        backbone: module with ``out_channels`` returning an ordered dict of feature maps:
            the one ``config.backbone`` describes (``build_backbone(config.backbone)``,
            maybe with loaded weights), or, with ``config.backbone.name == "custom"``,
            one of the user's own with ``config.backbone.out_channels`` channels.
        config: every setting; ``config.num_classes`` counts the background. It is kept
            as :attr:`config` and describes exactly this network (a checkpoint's config
            rebuilds it), also after ``roi_heads.box_predictor`` is replaced by one of
            another class count (torchvision's fine-tuning idiom), which it follows, as
            it follows the other heads and the RoI pooler replaced by modules of this
            package's classes (:meth:`_follow_heads`); a model whose config does not
            rebuild it is refused at save (:meth:`check_config_rebuilds`). An integer is
            torchvision's ``num_classes`` in that place (``FasterRCNN(backbone, 2,
            rpn_anchor_generator=...)``), with the keywords below.
        torchvision_keywords: instead of ``config``, torchvision's form
            (``num_classes=2, rpn_anchor_generator=AnchorGenerator(...),
            box_roi_pool=MultiScaleRoIAlign(...), min_size=...``): the config is made
            from them (:func:`~faster_rcnn.torchvision_options.constructor_form`); an
            ``rpn_head``, ``box_head`` or ``box_predictor`` of this package's class
            (``RPNHead``; ``TwoMLPHead``, ``VGG16BoxHead`` or ``ConvFCHead``;
            ``FastRCNNPredictor``) sets the fields its shapes give and is used, with its
            weights, in the model.
        heads: with ``config``, head modules it describes, used with their weights in
            place of fresh ones (a preset's ``rpn_head=``, ``box_head=``,
            ``box_predictor=``, its config made by
            :func:`~faster_rcnn.torchvision_heads.with_given_heads`); one it does not
            describe (a predictor of another class count, a layer replaced, a class of
            the user's own...) is refused.

    Raises:
        TypeError: ``config`` is neither a :class:`FasterRCNNConfig` nor a class
            count, both a config (or ``heads``) and keywords were given, a class count
            both in the config's place and as ``num_classes``, or a keyword
            torchvision's ``FasterRCNN`` does not take.
        ValueError: the backbone contradicts ``config.backbone``; a custom one returns
            another number of feature maps than ``config.anchors`` has levels (or not the
            maps ``config.roi_heads`` pools); a keyword's value is out of its field's
            range, or is a head module of another class than this package's, or one
            that contradicts the rest (``num_classes`` with a ``box_predictor``...), or
            one of ``heads`` that ``config`` does not describe.
    """

    def __init__(
        self,
        backbone: nn.Module,
        config: FasterRCNNConfig | int | None = None,
        *,
        heads: GivenHeads | None = None,
        **torchvision_keywords: Any,
    ) -> None:
        super().__init__()
        if isinstance(config, int) and not isinstance(config, bool):
            # torchvision's FasterRCNN(backbone, num_classes, ...): its second argument.
            torchvision_keywords = keywords_with_class_count(config, torchvision_keywords)
            config = None
        if torchvision_keywords:
            if config is not None or heads is not None:
                raise TypeError(
                    "FasterRCNN(backbone, config, ...): give a config or torchvision's "
                    f"keywords ({', '.join(torchvision_keywords)}), not both"
                )
            config, heads = constructor_form(backbone, torchvision_keywords)
        heads = heads or GivenHeads()
        if not isinstance(config, FasterRCNNConfig):
            raise TypeError(
                f"config must be a FasterRCNNConfig, got {type(config).__name__}: the class "
                "count is its num_classes (faster_rcnn.models.preset_config(name, "
                "num_classes), with backbone name 'custom' for a backbone of your own), or "
                "FasterRCNN(backbone, num_classes=...) as in torchvision"
            )
        check_backbone_matches(backbone, config.backbone)
        check_custom_feature_maps(backbone, config)
        check_described(config, heads)
        self._config = config
        self.transform = ImageTransform(config.transform)
        self.backbone = backbone
        self.rpn = RegionProposalNetwork.from_config(config, heads.rpn_head)
        self.roi_heads = RoIHeads.from_config(config, heads.box_head, heads.box_predictor)
        self._heads_followed = (self._heads_signature(), config)
        # Set by faster_rcnn.fast_inference.optimize_for_inference.
        self.memory_format = torch.contiguous_format
        self.inference_only = False

    def __setattr__(self, name: str, value: Any) -> None:
        # A backbone set in place of the built one may name other feature maps: a pooler
        # set on the heads afterwards is no longer checked against the built one's.
        if name == "backbone" and "roi_heads" in self._modules:
            self.roi_heads.backbone_maps = None
        super().__setattr__(name, value)

    @property
    def memory_format(self) -> torch.memory_format:
        """The layout the backbone reads the image batch in (``torch.channels_last`` after
        ``optimize_for_inference``)."""
        return getattr(torch, self._memory_format)

    @memory_format.setter
    def memory_format(self, value: torch.memory_format) -> None:
        if not isinstance(value, torch.memory_format):
            raise TypeError(f"memory_format must be a torch.memory_format, got {value!r}")
        # Kept by name: a torch.memory_format does not pickle, and torch.save(model) must.
        self._memory_format = str(value).removeprefix("torch.")

    @property
    def config(self) -> FasterRCNNConfig:
        """The (immutable) config of this network: the one it was built from, or, once
        ``roi_heads.box_predictor`` was replaced by one of another class count
        (``FastRCNNPredictor(in_features, k)``, torchvision's fine-tuning idiom), a copy
        with ``num_classes = k`` and without the class names and per-class NMS thresholds,
        which were the old classes' (the head's are dropped too where their count is not
        the new classes', its ``nms_thresh`` then serving every class). It also follows
        the inference settings that torchvision's users set on the modules
        (``model.roi_heads.score_thresh = 0.5``,
        ``model.transform.min_size = (600,)``, ``model.rpn._post_nms_top_n["testing"] =
        300``, ``model.roi_heads.soft_nms_sigma = 0.5``) and the training ones
        (``model.rpn.proposal_matcher.high_threshold = 0.6``,
        ``model.roi_heads.box_coder.weights = (5.0, 5.0, 2.0, 2.0)``,
        ``model.rpn.smooth_l1_beta = 0.5``; see
        :meth:`_follow_settings`), and the head modules and the RoI pooler
        replaced by ones of this package's classes (``model.rpn.head = RPNHead(...)``,
        ``model.roi_heads.box_head = TwoMLPHead(...)``, ``model.roi_heads.box_roi_pool =
        MultiScaleRoIAlign(...)``; see :meth:`_follow_heads`), so a model file or an ONNX
        export of the model records what it runs with.

        Raises:
            ValueError: the predictor's ``bbox_pred`` has not four outputs per class, or
                a setting set on a module is out of its config field's range.
        """
        self._follow_predictor()
        self._follow_settings()
        self._follow_heads()
        return self._config

    @property
    def num_classes(self) -> int:
        """Classes including the background: the box predictor's (``config.num_classes``)."""
        self._follow_predictor()
        return self._config.num_classes

    def _follow_settings(self) -> None:
        """Bring the config to the settings of the transform, the RPN and the head that
        torchvision names alike and its users change after building the model: the
        resize and the normalisation, the anchors (``model.rpn.anchor_generator =
        AnchorGenerator(...)``), the RPN's thresholds and proposal limits, the RoI pooler
        (``model.roi_heads.box_roi_pool = MultiScaleRoIAlign(...)``), the head's
        thresholds, the detections an image, the anchors and RoIs a training image
        samples (``fg_bg_sampler.batch_size_per_image`` and ``positive_fraction``), the
        IoUs that label them (``proposal_matcher.high_threshold`` and
        ``low_threshold``), the box coders' weights (``box_coder.weights``), the head's
        (Soft-)NMS and smallest box, the losses (``smooth_l1_beta``, the RPN's
        ``loss_normalization`` and ``box_loss_weight``) and the target creators'
        ``allowed_border`` (the RPN's) and ``gt_jitter`` (the head's)."""
        try:
            changed = self._changed_settings()
            if changed:
                self._config = self._config.replace(**changed)
        except ValueError as error:
            raise ValueError(f"a setting set on the model's modules is invalid: {error}") from None
        except AttributeError as error:
            # Raised out of a property, it would read as the model having no `config`.
            raise RuntimeError(f"model.config cannot read a module's settings: {error}") from error

    def _changed_settings(self) -> dict[str, dict[str, object]]:
        """The config's sections whose settings on the modules differ from the config,
        with those settings, per section ``{field: value}``."""
        rpn, heads, anchors = self.rpn, self.roi_heads, self.rpn.anchor_generator
        # A target creator wrapped or replaced by the user's own (a test's, a hook's) that
        # has not the setting leaves the config's.
        allowed_border = getattr(
            rpn.target_creator, "allowed_border", self._config.rpn.allowed_border
        )
        gt_jitter = getattr(heads.target_creator, "gt_jitter", self._config.roi_heads.gt_jitter)
        live = {
            "transform": {
                "min_size": self.transform.min_size,
                "max_size": self.transform.max_size,
                "image_mean": tuple(self.transform.image_mean),
                "image_std": tuple(self.transform.image_std),
                "size_divisible": self.transform.size_divisible,
                "multi_scale_per": self.transform.multi_scale_per,
                "train_window": self.transform.train_window,
            },
            "anchors": {
                "sizes": anchors.sizes,
                "aspect_ratios": anchors.aspect_ratios,
                "offset": anchors.offset,
            },
            "rpn": {
                "nms_thresh": rpn.nms_thresh,
                "score_thresh": rpn.score_thresh,
                "min_size": rpn.min_size,
                **rpn.proposal_limits(),
                **_sampled(rpn.fg_bg_sampler, SAMPLERS),
                **rpn.proposal_matcher.config_settings(),
                "allow_low_quality_matches": rpn.proposal_matcher.allow_low_quality_matches,
                "allowed_border": allowed_border,
                "box_coder_weights": tuple(rpn.box_coder.weights),
                "loss_normalization": rpn.loss_normalization,
                "box_loss_weight": rpn.box_loss_weight,
                "smooth_l1_beta": rpn.smooth_l1_beta,
            },
            "roi_heads": {
                # A pooler set as model.roi_heads.box_roi_pool, where a config describes it.
                **(pooler_fields(heads.box_roi_pool) or {}),
                "score_thresh": heads.score_thresh,
                "nms_thresh": heads.nms_thresh,
                "detections_per_img": heads.detections_per_img,
                "min_box_size": heads.min_box_size,
                "class_nms_thresh": tuple(heads.class_nms_thresh),
                "soft_nms_sigma": heads.soft_nms_sigma,
                "soft_nms_min_score": heads.soft_nms_min_score,
                **_sampled(heads.fg_bg_sampler, ROI_SAMPLERS),
                **heads.proposal_matcher.config_settings(),
                "gt_jitter": gt_jitter,
                "box_coder_weights": tuple(heads.box_coder.weights),
                "smooth_l1_beta": heads.smooth_l1_beta,
            },
        }
        return {
            section: fields
            for section, fields in live.items()
            if any(getattr(getattr(self._config, section), k) != v for k, v in fields.items())
        }

    def _follow_heads(self) -> None:
        """Bring the config to head modules replaced on the built model
        (``model.rpn.head = RPNHead(64, 3, conv_depth=2)``, ``model.roi_heads.box_head =
        TwoMLPHead(64 * 7 * 7, 128)`` with a ``FastRCNNPredictor(128, k)``) where a config
        describes them (:func:`~faster_rcnn.torchvision_heads.replaced_heads_config`);
        one it does not describe leaves it, and :meth:`check_config_rebuilds` refuses the
        model. Only heads of other classes or shapes than last time are read, or a config
        changed since (the anchors a location a new RPN head must match)."""
        signature = self._heads_signature()
        last = getattr(self, "_heads_followed", None)  # absent from older pickled models
        if last is not None and last[0] == signature and last[1] is self._config:
            return
        heads = GivenHeads(self.rpn.head, self.roi_heads.box_head, self.roi_heads.box_predictor)
        self._config = replaced_heads_config(self._config, heads) or self._config
        self._heads_followed = (signature, self._config)

    def _heads_signature(self) -> tuple[tuple[type, tuple[torch.Size, ...]], ...]:
        """Each head module's class and weights' shapes: what tells a replaced one."""
        heads = (self.rpn.head, self.roi_heads.box_head, self.roi_heads.box_predictor)
        return tuple((type(head), tuple(p.shape for p in head.parameters())) for head in heads)

    def check_config_rebuilds(self) -> None:
        """Refuse a network that :attr:`config` does not rebuild, as a model file would
        rebuild it: a module replaced on the built model (or inside one) that no config
        describes, a head of the user's own class, torchvision's, one of other layers.
        The RPN and the heads the config describes are made on the meta device (no
        memory, no random draws) and compared, module by module (class and settings),
        then weight by weight (shape).

        Raises:
            ValueError: naming the first module (or weight) that differs, and both sides.
        """
        config = self.config
        with torch.device("meta"):
            rebuilt = {"rpn": RegionProposalNetwork.from_config(config)}
            rebuilt["roi_heads"] = RoIHeads.from_config(config)
        for name, built in rebuilt.items():
            difference = layout_difference(getattr(self, name), built)
            if difference is not None:
                part, have, expected = ("nothing" if x is None else x for x in difference)
                raise ValueError(
                    f"model.{name}.{part} is {have}, but the model's config rebuilds "
                    f"{expected} there: no config describes it (a module replaced after "
                    "building), so a model file would not load as this model"
                )

    def _follow_predictor(self) -> None:
        """Bring the config (and the head's per-class NMS thresholds) to a replaced box
        predictor's class count, as :attr:`config` describes; every forward pass calls it,
        so labels are checked against the predictor's classes."""
        classes = predictor_num_classes(self.roi_heads.box_predictor)
        if classes is None or classes == self._config.num_classes:
            return
        self._config = self._config.replace(
            num_classes=classes, class_names=(), roi_heads={"class_nms_thresh": ()}
        )
        if len(self.roi_heads.class_nms_thresh) != classes - 1:
            self.roi_heads.class_nms_thresh = ()

    def train(self, mode: bool = True) -> FasterRCNN:
        """Set training mode (``mode``) or eval mode, as ``nn.Module.train`` does.

        Raises:
            ValueError: training mode for a model from ``optimize_for_inference`` (its
                batch norms are folded with their eval statistics).
        """
        if mode and self.inference_only:
            raise ValueError(
                "this model was rewritten for inference (its batch norms are folded): "
                "train the model it was made from"
            )
        return super().train(mode)

    def __prepare_scriptable__(self) -> FasterRCNN:
        """Refuse ``torch.jit.script(model)``, which calls this first, naming what exports
        the model instead.

        Raises:
            RuntimeError: always.
        """
        raise RuntimeError(_NOT_SCRIPTABLE)

    @classmethod
    def from_config(cls, config: FasterRCNNConfig, heads: GivenHeads | None = None) -> FasterRCNN:
        """Build the model a config describes, backbone included (randomly initialised),
        with the given ``heads`` the config describes in place of fresh ones."""
        return cls(build_backbone(config.backbone), config, heads=heads)

    def forward(
        self,
        images: list[Tensor] | Tensor,
        targets: list[dict[str, Tensor]] | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        """Detect objects, or compute the training losses.

        Args:
            images: per image, ``float[3, H_i, W_i]`` in 0..1 (or grey ``float[1, H_i,
                W_i]``), or ``uint8`` levels as the readers' items carry them; sizes may
                differ. A ``float[N, 3, H, W]`` batch tensor is its ``N`` images, as in
                torchvision.
            targets: training only; per image ``{"boxes": float[N_i, 4], "labels":
                int64[N_i]}`` in the image's pixels (integer boxes are taken too),
                ``N_i = 0`` allowed.
            generator: random source of the samplers and multi-scale choice; ``None``
                uses the global generator (in torchvision's order of draws).

        Returns:
            Training: ``{"loss_classifier", "loss_box_reg", "loss_objectness",
            "loss_rpn_box_reg"}``. Eval: per image ``{"boxes": (D, 4), "labels": (D,),
            "scores": (D,)}``.

        Raises:
            ValueError: training mode without targets, or a malformed batch
                (:meth:`prepare_batch`).
            RuntimeError: traced by ``torch.export``, which the fixed-shape
                :class:`~faster_rcnn.export.DetectionGraph` is made for.
        """
        if torch.compiler.is_exporting():
            raise RuntimeError(_NOT_EXPORTABLE)
        if self.training and targets is None:
            raise ValueError("targets are required in training mode")
        batch = self.prepare_batch(images, targets, generator)
        features = self.features(batch.images)
        proposals, proposal_losses = self.rpn(
            batch.images, features, batch.targets, generator=generator
        )
        detections, detector_losses = self.roi_heads(
            features, proposals, batch.images.image_sizes, batch.targets, generator=generator
        )
        if self.training:
            return {**detector_losses, **proposal_losses}
        return self.transform.postprocess(
            detections, batch.images.image_sizes, batch.original_sizes
        )

    def prepare_batch(
        self,
        images: list[Tensor] | Tensor,
        targets: list[dict[str, Tensor]] | None = None,
        generator: torch.Generator | None = None,
    ) -> PreparedBatch:
        """Check a batch (errors name the image and the box), then resize, normalise and
        pad it; the targets' boxes are resized with their images.

        Args:
            images: per image, ``float[3, H_i, W_i]`` in 0..1, or ``float[1, H_i, W_i]``
                (grey, read as its channel three times), or ``uint8`` levels of either;
                or one ``float[N, 3, H, W]`` batch tensor, as torchvision takes them.
            targets: per image, ``{"boxes": float[N_i, 4], "labels": int64[N_i]}`` in the
                image's pixels, or ``None``.
            generator: random source of the multi-scale choice (training).

        Images of another floating dtype are converted to the weights' dtype, ``uint8``
        ones scaled to 0..1 as the readers scale them, one at a time in the transform;
        integer boxes to float32, as torchvision's resize makes them.

        Raises:
            ValueError: a malformed image or target, one on another device than the
                model's (or on the meta device), an image too elongated to resize, a box
                wholly outside its image or far beyond it.
        """
        num_classes = self.num_classes  # follows a replaced predictor
        weight = next(self.parameters())
        images = rgb_image_list(images)
        validate_images(images, weight.device)
        validate_image_sizes(images, self.transform.min_size, self.transform.max_size)
        original_sizes = [(int(img.shape[-2]), int(img.shape[-1])) for img in images]
        if targets is not None:
            validate_targets(targets, len(images), num_classes, original_sizes, weight.device)
            targets = [float_boxes(target) for target in targets]
        images = [_in_dtype(image, weight.dtype) for image in images]
        image_list, resized = self.transform(images, targets, generator=generator)
        return PreparedBatch(image_list, resized, original_sizes)

    def features(self, images: ImageList) -> dict[str, Tensor]:
        """The backbone's feature maps of a prepared batch, as an ordered dict."""
        return self.backbone_features(images.tensors)

    def backbone_features(self, tensors: Tensor) -> dict[str, Tensor]:
        """The backbone's feature maps of ``(N, 3, H, W)`` normalised, padded images, as an
        ordered dict (a backbone's single map is named ``"0"``)."""
        try:
            features = self.backbone(tensors.contiguous(memory_format=self.memory_format))
        except ValueError as error:
            # PyTorch's words for a training batch norm given a single value a channel.
            if not self.training or "more than 1 value per channel" not in str(error):
                raise
            n, _, height, width = tensors.shape
            raise ValueError(
                f"a training batch of {n} image(s) padded to {width}x{height} px leaves one "
                "value a channel to a batch norm of the backbone (its last map is 1x1): "
                "train on 2 or more images a batch, or on larger ones"
            ) from error
        if isinstance(features, Tensor):
            return OrderedDict([("0", features)])
        return features

    @torch.no_grad()
    def detect_with_proposals(
        self, images: list[Tensor], proposal_limit: int | None = None
    ) -> tuple[list[dict[str, Tensor]], list[dict[str, Tensor]]]:
        """Eval-mode detections and the RPN proposals they came from.

        Args:
            images: per image, ``float[3, H_i, W_i]`` in 0..1 or ``uint8`` levels.
            proposal_limit: return up to this many proposals an image, to evaluate them
                (the RPN's post-NMS limit raised to it for this call, never lowered). The
                detections still come from the model's own first
                ``config.rpn.post_nms_top_n_test``: proposals are kept by decreasing score
                after a greedy NMS, so those are exactly the proposals of the model's own
                limit, and the detections are bit-identical to :meth:`forward`'s.

        Returns:
            Per image, the detections (as :meth:`forward` in eval mode) and the proposals
            ``{"boxes": (P, 4), "scores": (P,)}`` by decreasing objectness, both in the
            input image's pixels.
        """
        return self._detect(images, proposal_limit, before_nms=False)

    @torch.no_grad()
    def candidates_with_proposals(
        self, images: list[Tensor], proposal_limit: int | None = None
    ) -> tuple[list[dict[str, Tensor]], list[dict[str, Tensor]]]:
        """As :meth:`detect_with_proposals`, but every (box, class) pair above the score
        threshold in place of the detections, before the head's NMS and limit: what
        test-time augmentation pools across views. ``model.roi_heads.select`` keeps an
        image's detections among them (to float rounding: its IoUs are then computed in
        the input image's pixels rather than the resized image's).

        Returns:
            Per image, the candidates ``{"boxes": (C, 4), "labels": (C,), "scores":
            (C,)}`` and the proposals, both in the input image's pixels.
        """
        return self._detect(images, proposal_limit, before_nms=True)

    def _detect(
        self, images: list[Tensor], proposal_limit: int | None, before_nms: bool
    ) -> tuple[list[dict[str, Tensor]], list[dict[str, Tensor]]]:
        """The detections (or, ``before_nms``, the head's candidates) and the proposals
        of :meth:`detect_with_proposals`."""
        self._check_eval()
        batch = self.prepare_batch(images)
        found, proposals = self.detect_prepared(batch.images, proposal_limit, before_nms)
        sizes = batch.images.image_sizes
        return (
            self.transform.postprocess(found, sizes, batch.original_sizes),
            self.transform.postprocess(proposals, sizes, batch.original_sizes),
        )

    @torch.no_grad()
    def detect_prepared(
        self, images: ImageList, proposal_limit: int | None = None, before_nms: bool = False
    ) -> tuple[list[dict[str, Tensor]], list[dict[str, Tensor]]]:
        """:meth:`detect_with_proposals` (or, ``before_nms``,
        :meth:`candidates_with_proposals`) of a batch already prepared
        (:meth:`prepare_batch`), or of windows cut from one
        (:class:`~faster_rcnn.windowed_detection.WindowedDetection`).

        Returns:
            Per image, the detections ``{"boxes": (D, 4), "labels": (D,), "scores":
            (D,)}`` (or candidates) and the proposals ``{"boxes": (P, 4), "scores":
            (P,)}``, both in the prepared image's pixels (``images.image_sizes``).
        """
        self._check_eval()
        features = self.features(images)
        own = self.rpn.post_nms_top_n()
        limit = own if proposal_limit is None else max(own, proposal_limit)
        boxes, scores = self.rpn.propose(images, features, post_nms_top_n=limit)
        heads_input = (features, [b[:own] for b in boxes], images.image_sizes)
        if before_nms:
            found = self.roi_heads.candidates(*heads_input)
        else:
            found, _ = self.roi_heads(*heads_input)
        proposals = [{"boxes": b, "scores": s} for b, s in zip(boxes, scores, strict=True)]
        return found, proposals

    def _check_eval(self) -> None:
        """Refuse to detect in training mode (its resize draws sizes, its heads want targets)."""
        if self.training:
            raise RuntimeError("detecting needs the model in eval mode")


def _in_dtype(image: Tensor, dtype: torch.dtype) -> Tensor:
    """``image`` as the transform takes it for weights of ``dtype``: ``uint8`` levels as
    they are for float32 weights (the transform scales them an image at a time, so that
    one full-size float copy exists at once), else floating point in ``dtype`` (a float64
    or float16 image meets float32 weights: computed in the weights' dtype)."""
    if image.dtype == torch.uint8 and dtype == torch.float32:
        return image
    return as_float_image(image).to(dtype)


def _sampled(
    sampler: BalancedPositiveNegativeSampler,
    kinds: Mapping[str, Callable[[int, float], BalancedPositiveNegativeSampler]],
) -> dict[str, object]:
    """The config fields of a training sampler's numbers, which torchvision's users set
    on the built model (``model.rpn.fg_bg_sampler.batch_size_per_image = 128``), and of
    its kind among ``kinds`` (the stage's samplers by name), where one is set there
    (``model.rpn.fg_bg_sampler = HardNegativeSampler(256, 0.5)``)."""
    kind = sampler_kind(sampler, kinds)
    return {
        "batch_size_per_image": sampler.batch_size_per_image,
        "positive_fraction": sampler.positive_fraction,
        **({} if kind is None else {"sampler": kind}),
    }
