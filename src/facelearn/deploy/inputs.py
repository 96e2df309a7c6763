"""What the Recognizer accepts as an image: a path, encoded bytes, a PIL image or a NumPy array.

Arrays are taken as RGB unless the caller says otherwise: ``channel_order="bgr"`` for what
``cv2.imread`` returns (deepface and insightface users pass those; a genuine LFW pair scored 0.31
read as BGR against 0.68 as RGB). Files and bytes go through the one decoding gate
(:func:`facelearn.data.images.decode_image`: format sniffed, pixel count checked from the header).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.images import decode_image, read_image
from ..errors import DataError

CHANNEL_ORDERS = ("rgb", "bgr")


def as_rgb(image, channel_order: str = "rgb") -> np.ndarray:
    """HWC uint8 RGB from a path, bytes, a PIL image or an (H, W, 3) uint8 array in ``channel_order``."""
    if channel_order not in CHANNEL_ORDERS:
        raise DataError(f"channel_order must be 'rgb' or 'bgr' (cv2.imread gives 'bgr'), got {channel_order!r}")
    if isinstance(image, (str, Path)):
        return from_path(Path(image))
    if isinstance(image, (bytes, bytearray, memoryview)):
        return decode_image(bytes(image), "image bytes")
    if hasattr(image, "convert") and hasattr(image, "size"):  # a PIL image: its own mode says RGB
        return np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise DataError(
            f"an image array is (H, W, 3) uint8, got {array.dtype} {array.shape} (give a path, bytes or a PIL "
            "image instead, or convert: gray → np.stack([g] * 3, -1))"
        )
    return np.ascontiguousarray(array[..., ::-1]) if channel_order == "bgr" else array


def from_path(path: Path) -> np.ndarray:
    if not path.exists():
        raise DataError(f"{path} does not exist")
    if not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file"
        raise DataError(f"{path} is {kind}: give the path of one photo")
    return read_image(path)
