"""Images as a caller sends them: checked for size and format before anything is decoded.

An upload is bytes (a multipart file or base64 in JSON) — never a path or a URL: a string that
looks like one is refused and nothing is opened. The format is sniffed from the first bytes (the
file name and the declared content type are not trusted), the pixel count is read from the header
and refused above the limit before a full decode (a 1 MB PNG of 20000×20000 never reaches memory),
and a truncated file is an error, not a half-grey face. Nothing is written to disk.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .problems import Problem

SIGNATURES = {"jpeg": (b"\xff\xd8\xff",), "png": (b"\x89PNG\r\n\x1a\n",), "webp": (b"RIFF",)}
LOOKS_LIKE_LOCATION = re.compile(r"^\s*([a-zA-Z][a-zA-Z0-9+.-]*://|file:|~|\.{1,2}/|[a-zA-Z]:\\|/[^/+=]*[./\\])")


@dataclass(frozen=True)
class ImageLimits:
    max_image_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000
    formats: tuple[str, ...] = ("jpeg", "png", "webp")


def sniff_format(data: bytes) -> str | None:
    for name, prefixes in SIGNATURES.items():
        if any(data.startswith(prefix) for prefix in prefixes):
            if name == "webp" and data[8:12] != b"WEBP":
                continue
            return name
    return None


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


def decode_upload(data: bytes, field: str, limits: ImageLimits) -> np.ndarray:
    """Checked bytes → HWC uint8 RGB."""
    if len(data) > limits.max_image_bytes:
        raise Problem(
            413, "image_too_large", f"{field}: {len(data):,} bytes, above the limit of {limits.max_image_bytes:,}"
        )
    kind = sniff_format(data)
    if kind is None or kind not in limits.formats:
        text = data[:200].decode("utf-8", "replace")
        if LOOKS_LIKE_LOCATION.match(text):
            raise Problem(400, "path_or_url", f"{field}: a path or URL, not an image; upload the image's bytes")
        raise Problem(
            415, "unsupported_format", f"{field}: not a {', '.join(limits.formats)} image (sniffed from its bytes)"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is applied below
            image = Image.open(io.BytesIO(data))
            width, height = image.size  # the header only: nothing decoded yet
            if width * height > limits.max_pixels:
                raise Problem(
                    413,
                    "image_too_large",
                    f"{field}: {width}×{height} pixels, above the limit of {limits.max_pixels:,}",
                )
            image.load()  # a truncated file raises here
            return np.asarray(image.convert("RGB"))
    except Problem:
        raise
    except Image.DecompressionBombError:  # Pillow's own limit (twice its default) lies above ours
        raise Problem(413, "image_too_large", f"{field}: above the limit of {limits.max_pixels:,} pixels") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise Problem(400, "bad_image", f"{field}: the {kind} cannot be decoded ({str(error)[:120]})") from None
