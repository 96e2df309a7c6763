"""Decoding images to HWC uint8 RGB, with one error type for anything unreadable.

An image's size is read from its header before it is decoded: one above ``MAX_PIXELS`` (default
64 million, ``$FACELEARN_MAX_PIXELS``) is refused as unreadable, so a small file that decompresses
to gigabytes (a "decompression bomb") never reaches memory.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..errors import DataError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp"}
MAX_PIXELS = int(os.environ.get("FACELEARN_MAX_PIXELS", 64_000_000))


class ImageError(DataError):
    """An image file or buffer that cannot be decoded."""


class ImageTooLarge(ImageError):
    """An image above the pixel limit, refused from its header before decoding."""


def header_size(buffer: np.ndarray, source: str) -> tuple[int, int] | None:
    """(width, height) from the header alone, or None when Pillow cannot tell (cv2 then decides)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we apply our own limit
            with Image.open(io.BytesIO(buffer.tobytes())) as image:
                return image.size
    except Image.DecompressionBombError as error:  # Pillow's hard limit lies above ours
        raise ImageTooLarge(f"{source}: {error}; more than the limit of {MAX_PIXELS:,} pixels") from None
    except Exception:  # not an image Pillow knows; cv2 may still decode it
        return None


def decode_image(data: bytes | np.ndarray, source: str = "buffer") -> np.ndarray:
    """Encoded bytes → HWC uint8 RGB. Grayscale becomes 3 channels, 16-bit becomes 8-bit,
    alpha is dropped."""
    buffer = (
        np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray)) else np.asarray(data, np.uint8).ravel()
    )
    size = header_size(buffer, source) if buffer.size else None
    if size is not None and size[0] * size[1] > MAX_PIXELS:
        raise ImageTooLarge(
            f"{source}: {size[0]}×{size[1]} pixels, more than the limit of {MAX_PIXELS:,} "
            "(set FACELEARN_MAX_PIXELS to allow larger images)"
        )
    try:
        image = cv2.imdecode(buffer, cv2.IMREAD_COLOR) if buffer.size else None
    except cv2.error as error:  # e.g. above OpenCV's own pixel limit
        raise ImageError(f"{source}: cannot be decoded ({' '.join(str(error).split())[:200]})") from None
    if image is None:
        raise ImageError(f"{source}: not a decodable image ({buffer.size} bytes)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_image(path: str | Path) -> np.ndarray:
    try:
        data = np.fromfile(str(path), np.uint8)
    except OSError as error:
        raise ImageError(f"{path}: cannot read ({error})") from error
    return decode_image(data, str(path))


def encode_image(image: np.ndarray, extension: str = ".jpg", quality: int = 95) -> bytes:
    """HWC uint8 RGB → encoded bytes (JPEG by default)."""
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if extension in (".jpg", ".jpeg") else []
    ok, buffer = cv2.imencode(extension, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ImageError(f"could not encode an image as {extension}")
    return buffer.tobytes()


def fit_size(image: np.ndarray, size: int) -> np.ndarray:
    """Resize to size×size when it is not already (aligned faces should already be)."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
