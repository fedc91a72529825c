import pytest

from faster_rcnn.config import FasterRCNNConfig
from faster_rcnn.models import PRESETS, preset_config


@pytest.mark.parametrize("name", list(PRESETS))
def test_json_round_trip_restores_every_preset_exactly(name):
    cfg = preset_config(name, num_classes=3)
    cfg.class_names = ("cat", "dog")
    assert FasterRCNNConfig.from_json(cfg.to_json()) == cfg


def test_unknown_fields_and_inconsistent_class_names_are_rejected():
    data = preset_config("small").to_dict()
    data["rpn"]["nms_threshold"] = 0.7
    with pytest.raises(ValueError, match=r"unknown RPNConfig field\(s\): \['nms_threshold'\]"):
        FasterRCNNConfig.from_dict(data)
    data = preset_config("small", num_classes=3).to_dict()
    data["class_names"] = ["a", "b", "c"]
    with pytest.raises(ValueError, match="3 class names for 2 classes"):
        FasterRCNNConfig.from_dict(data)
    with pytest.raises(ValueError, match="unknown config field 'colour'"):
        FasterRCNNConfig.from_dict({"colour": 1})
