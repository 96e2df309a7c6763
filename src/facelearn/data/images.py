"""Decoding images to HWC uint8 RGB: the one gate every photo passes, from a file, the CLI or the service.

:func:`decode_image` checks before it decodes and after:

* the format is sniffed from the first bytes (the name and a declared content type are not trusted);
  only formats with a readable header are decoded (JPEG, PNG, WebP, BMP, TIFF, PNM);
* the pixel count is read from the header and refused above ``max_pixels`` (default 64 million,
  ``$FACELEARN_MAX_PIXELS``) before anything is decoded, and charged to a :class:`PixelBudget` that
  bounds what one call (a request, a command) may decode in all;
* the data must be complete: a JPEG is walked marker by marker and its scans must hold the bits
  its header's size needs (``jpeg_structure.py``), a WebP its RIFF length; a JPEG that still
  decodes to libjpeg's mid-grey fill is decoded again with zero bits where its data ended —
  a complete file decodes the same, a truncated one does not — and refused. Never a grey face.

Errors are :class:`ImageError` (unreadable, truncated), :class:`UnsupportedImage` and
:class:`ImageTooLarge`, each naming the source and never the bytes.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..errors import DataError
from .jpeg_structure import JpegStructureError, read_jpeg_structure

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp"}
MAX_PIXELS = int(os.environ.get("FACELEARN_MAX_PIXELS", 64_000_000))
MAX_CALL_PIXELS = int(os.environ.get("FACELEARN_MAX_CALL_PIXELS", 256_000_000))
SIGNATURES = {
    "jpeg": (b"\xff\xd8\xff",),
    "png": (b"\x89PNG\r\n\x1a\n",),
    "webp": (b"RIFF",),
    "bmp": (b"BM",),
    "tiff": (b"II*\x00", b"MM\x00*"),
    "pnm": (b"P5", b"P6"),
}
GREY_FILL = 128  # what libjpeg writes where a JPEG's data ran out


class ImageError(DataError):
    """An image file or buffer that cannot be decoded (unreadable, truncated)."""

    code = "bad_image"


class UnsupportedImage(ImageError):
    code = "unsupported_format"


class ImageTooLarge(ImageError):
    code = "image_too_large"


@dataclass(frozen=True)
class ImageHeader:
    format: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


class PixelBudget:
    """The pixels one call may decode in all: each image is charged from its header, before decoding."""

    def __init__(self, limit: int = MAX_CALL_PIXELS):
        self.limit, self.used = limit, 0

    def take(self, header: ImageHeader, source: str) -> None:
        if self.used + header.pixels > self.limit:
            raise ImageTooLarge(
                f"{source}: {header.width}×{header.height} pixels would bring this call to "
                f"{self.used + header.pixels:,}, more than its limit of {self.limit:,} pixels; send fewer images"
            )
        self.used += header.pixels


def sniff_format(data: bytes) -> str | None:
    for name, prefixes in SIGNATURES.items():
        if any(data.startswith(prefix) for prefix in prefixes):
            if name == "webp" and data[8:12] != b"WEBP":
                continue
            return name
    return None


def read_header(data: bytes, source: str = "buffer", formats: tuple[str, ...] | None = None) -> ImageHeader:
    """The format and size from the header alone, with the completeness checks that need no decoding."""
    kind = sniff_format(data)
    if kind is None or (formats is not None and kind not in formats):
        accepted = ", ".join(formats or SIGNATURES)
        raise UnsupportedImage(
            f"{source}: not a decodable image (not a {accepted} image by its first bytes; {len(data):,} bytes)"
        )
    if kind == "jpeg":
        try:
            structure = read_jpeg_structure(data)
        except JpegStructureError as error:
            kind_of = UnsupportedImage if error.unsupported else ImageError
            raise kind_of(f"{source}: {error}") from None
        return ImageHeader(kind, structure.width, structure.height)
    if kind == "webp" and int.from_bytes(data[4:8], "little") + 8 > len(data):
        raise ImageError(f"{source}: the data ends early (the WebP says {int.from_bytes(data[4:8], 'little') + 8:,} "
                         f"bytes, the file has {len(data):,}; truncated)")  # fmt: skip
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is applied
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
    except Image.DecompressionBombError:  # Pillow's hard limit lies above any sensible one of ours
        raise ImageTooLarge(f"{source}: more than the limit of {MAX_PIXELS:,} pixels") from None
    except Exception:  # noqa: BLE001 - any failure to read a header is an unreadable image
        raise ImageError(f"{source}: the {kind} header cannot be read (a damaged or truncated file)") from None
    return ImageHeader(kind, width, height)


def decode_image(
    data: bytes | np.ndarray,
    source: str = "buffer",
    max_pixels: int | None = None,
    budget: PixelBudget | None = None,
    formats: tuple[str, ...] | None = None,
) -> np.ndarray:
    """Encoded bytes → HWC uint8 RGB. Grayscale becomes 3 channels, 16-bit becomes 8-bit, alpha is
    dropped, EXIF orientation is applied."""
    data = bytes(data) if isinstance(data, (bytes, bytearray, memoryview)) else np.asarray(data, np.uint8).tobytes()
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    if not data:
        raise ImageError(f"{source}: an empty file")
    header = read_header(data, source, formats)
    if header.pixels > limit:
        raise ImageTooLarge(
            f"{source}: {header.width}×{header.height} pixels, more than the limit of {limit:,} pixels "
            "(set FACELEARN_MAX_PIXELS to allow larger images)"
        )
    if budget is not None:
        budget.take(header, source)
    image = imdecode(data, source)
    if (
        header.format == "jpeg"
        and ends_in_grey_fill(image)
        and imdecode(padded_scan(data), source).tobytes() != image.tobytes()
    ):
        raise ImageError(f"{source}: the data ends early, and the rest of the image would be grey (truncated)")
    return image


def imdecode(data: bytes, source: str) -> np.ndarray:
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as error:  # e.g. above OpenCV's own pixel limit
        raise ImageError(f"{source}: cannot be decoded ({' '.join(str(error).split())[:200]})") from None
    if image is None:
        raise ImageError(f"{source}: not a decodable image ({len(data):,} bytes; damaged or truncated)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def ends_in_grey_fill(image: np.ndarray) -> bool:
    """The last 8×8 pixels are exactly libjpeg's fill (a complete file rarely is: flat synthetic grey)."""
    return bool((image[-8:, -8:] == GREY_FILL).all())


def padded_scan(data: bytes) -> bytes:
    """The JPEG with zero bytes before the end marker of its last scan: a decoder that had run out of
    data reads them as codes (a different image); one that had not ignores them (the same image)."""
    end = read_jpeg_structure(data).end
    return data[:end] + bytes(256) + data[end:]


def read_image(path: str | Path, max_pixels: int | None = None, budget: PixelBudget | None = None) -> np.ndarray:
    path = Path(path)
    try:
        if not path.is_file():  # a FIFO, a device or a folder would block or fail half-way
            raise ImageError(
                f"{path}: cannot read (not a regular file)" if path.exists() else f"{path}: cannot read (no such file)"
            )
        data = path.read_bytes()
    except OSError as error:
        raise ImageError(f"{path}: cannot read ({error.strerror or error})") from error
    return decode_image(data, str(path), max_pixels, budget)


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
