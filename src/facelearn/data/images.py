"""Decoding images to HWC uint8 RGB, with one error type for anything unreadable."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp"}


class ImageError(ValueError):
    """An image file or buffer that cannot be decoded."""


def decode_image(data: bytes | np.ndarray, source: str = "buffer") -> np.ndarray:
    """Encoded bytes → HWC uint8 RGB. Grayscale becomes 3 channels, 16-bit becomes 8-bit,
    alpha is dropped."""
    buffer = (
        np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray)) else np.asarray(data, np.uint8).ravel()
    )
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR) if buffer.size else None
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
