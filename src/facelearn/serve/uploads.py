"""Images as a caller sends them: counted, sized and checked by the one decoding gate.

An upload is bytes (a multipart file or base64 in JSON) — never a path or a URL: a string that
looks like one is refused and nothing is opened. A request holds at most ``max_images`` images
(JSON and multipart alike), and the pixel counts of all of them, read from their headers, must fit
``max_request_pixels`` before any is decoded. Each is then decoded by
:func:`facelearn.data.images.decode_image` — the gate the CLI and the Recognizer's callers use:
format sniffed, pixel count from the header, complete data required, never a grey fill. Nothing
is written to disk.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

import numpy as np

from ..data.images import ImageError, ImageHeader, decode_image, read_header, sniff_format
from .problems import Problem

LOOKS_LIKE_LOCATION = re.compile(r"^\s*([a-zA-Z][a-zA-Z0-9+.-]*://|file:|~|\.{1,2}/|[a-zA-Z]:\\|/[^/+=]*[./\\])")


@dataclass(frozen=True)
class ImageLimits:
    max_image_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000
    formats: tuple[str, ...] = ("jpeg", "png", "webp")
    max_images: int = 32
    max_request_pixels: int = 100_000_000


def from_base64(text: object, field: str) -> bytes:
    """Base64 text (optionally a ``data:image/...;base64,`` URI) → bytes; a path or URL is refused unopened."""
    if not isinstance(text, str):
        raise Problem(400, "bad_base64", f"{field}: expected base64 text of an image")
    if text.startswith("data:") and ";base64," in text:
        text = text.split(";base64,", 1)[1]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        if LOOKS_LIKE_LOCATION.match(text):
            raise Problem(
                400,
                "path_or_url",
                f"{field}: looks like a path or URL; send the image's bytes (a multipart file or base64) — "
                "the service never opens paths or URLs",
            ) from None
        raise Problem(400, "bad_base64", f"{field}: not valid base64 (send the image's bytes base64-encoded)") from None


def image_problem(error: ImageError, field: str, limits: ImageLimits) -> Problem:
    status = {"image_too_large": 413, "unsupported_format": 415}.get(error.code, 400)
    message = str(error)
    if error.code == "unsupported_format":
        message = f"{field}: not a {', '.join(limits.formats)} image (sniffed from its bytes)"
    return Problem(status, error.code, message)


def header_of(data: bytes, field: str, limits: ImageLimits) -> ImageHeader:
    """The size of an upload from its header (nothing decoded), with the checks that need no decoding."""
    if len(data) > limits.max_image_bytes:
        raise Problem(
            413, "image_too_large", f"{field}: {len(data):,} bytes, above the limit of {limits.max_image_bytes:,}"
        )
    if sniff_format(data) is None and LOOKS_LIKE_LOCATION.match(data[:200].decode("utf-8", "replace")):
        raise Problem(400, "path_or_url", f"{field}: a path or URL, not an image; upload the image's bytes")
    try:
        header = read_header(data, field, limits.formats)
    except ImageError as error:
        raise image_problem(error, field, limits) from None
    if header.pixels > limits.max_pixels:
        raise Problem(
            413,
            "image_too_large",
            f"{field}: {header.width}×{header.height} pixels, above the limit of {limits.max_pixels:,}",
        )
    return header


def check_request(images: dict[str, list[bytes]], limits: ImageLimits) -> None:
    """Every image of a request: its count, each one's header, and their pixels in all — before any decoding."""
    named = [(f"{name}[{i}]" if len(datas) > 1 or name == "images" else name, data)
             for name, datas in images.items() for i, data in enumerate(datas)]  # fmt: skip
    if len(named) > limits.max_images:
        raise Problem(
            413, "too_many_images", f"{len(named)} images in one request, above the limit of {limits.max_images}"
        )
    total = sum(header_of(data, field, limits).pixels for field, data in named)
    if total > limits.max_request_pixels:
        raise Problem(
            413,
            "too_many_pixels",
            f"the images of this request hold {total:,} pixels, above the limit of {limits.max_request_pixels:,} "
            "(send fewer or smaller images)",
        )


def decode_upload(data: bytes, field: str, limits: ImageLimits) -> np.ndarray:
    """Checked bytes → HWC uint8 RGB."""
    header_of(data, field, limits)
    try:
        return decode_image(data, field, limits.max_pixels, formats=limits.formats)
    except ImageError as error:
        raise image_problem(error, field, limits) from None
