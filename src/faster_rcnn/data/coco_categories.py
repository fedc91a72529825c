"""COCO's 80 detection categories by id, which is also the order of the 91 outputs of a
COCO detector's box predictor in torchvision (output 0 the background; the ids no
category has, 12, 26, 29, 30, 45, 66, 68, 69, 71 and 83, are outputs never trained).
"""

from __future__ import annotations

COCO_CATEGORIES: dict[int, str] = {
    1: "person",
    2: "bicycle",
    3: "car",
    4: "motorcycle",
    5: "airplane",
    6: "bus",
    7: "train",
    8: "truck",
    9: "boat",
    10: "traffic light",
    11: "fire hydrant",
    13: "stop sign",
    14: "parking meter",
    15: "bench",
    16: "bird",
    17: "cat",
    18: "dog",
    19: "horse",
    20: "sheep",
    21: "cow",
    22: "elephant",
    23: "bear",
    24: "zebra",
    25: "giraffe",
    27: "backpack",
    28: "umbrella",
    31: "handbag",
    32: "tie",
    33: "suitcase",
    34: "frisbee",
    35: "skis",
    36: "snowboard",
    37: "sports ball",
    38: "kite",
    39: "baseball bat",
    40: "baseball glove",
    41: "skateboard",
    42: "surfboard",
    43: "tennis racket",
    44: "bottle",
    46: "wine glass",
    47: "cup",
    48: "fork",
    49: "knife",
    50: "spoon",
    51: "bowl",
    52: "banana",
    53: "apple",
    54: "sandwich",
    55: "orange",
    56: "broccoli",
    57: "carrot",
    58: "hot dog",
    59: "pizza",
    60: "donut",
    61: "cake",
    62: "chair",
    63: "couch",
    64: "potted plant",
    65: "bed",
    67: "dining table",
    70: "toilet",
    72: "tv",
    73: "laptop",
    74: "mouse",
    75: "remote",
    76: "keyboard",
    77: "cell phone",
    78: "microwave",
    79: "oven",
    80: "toaster",
    81: "sink",
    82: "refrigerator",
    84: "book",
    85: "clock",
    86: "vase",
    87: "scissors",
    88: "teddy bear",
    89: "hair drier",
    90: "toothbrush",
}
# A COCO detector's outputs: the background and ids 1..90.
COCO_OUTPUTS = 91
# Pascal VOC's names of the six categories it shares with COCO under other names.
_VOC_NAMES = {
    "aeroplane": "airplane",
    "diningtable": "dining table",
    "motorbike": "motorcycle",
    "pottedplant": "potted plant",
    "sofa": "couch",
    "tvmonitor": "tv",
}
_ID_OF = {name: category for category, name in COCO_CATEGORIES.items()}


def coco_category_id(name: str) -> int | None:
    """The id of the COCO category a class name names, ``None`` where it names none.

    COCO's own names match in any case and with ``_`` or ``-`` for their spaces
    (``"Traffic_Light"``); Pascal VOC's six other names (``"aeroplane"``,
    ``"tvmonitor"``, ...) match the categories they name.
    """
    plain = name.strip().lower().replace("_", " ").replace("-", " ")
    return _ID_OF.get(_VOC_NAMES.get(plain, plain))


def coco_output_names() -> tuple[str, ...]:
    """The names of a COCO detector's outputs 1..90: each category's, and ``"N/A <id>"``
    for an id no category has (torchvision names those outputs ``"N/A"``; the id keeps
    each name unique)."""
    return tuple(COCO_CATEGORIES.get(k, f"N/A {k}") for k in range(1, COCO_OUTPUTS))
