"""The one image-decoding gate (data/images.py) on real LFW-a JPEGs: a header that lies, data that
ends early, a pixel budget per call, and no grey face — for the CLI, the Recognizer's callers and
the service alike."""

from __future__ import annotations

import io
import os
import resource
import subprocess
import sys

import numpy as np
import pytest
from conftest import header_lying_jpeg, shared_path
from PIL import Image

from facelearn.cli import main as facelearn
from facelearn.data.images import (
    ImageError,
    ImageTooLarge,
    PixelBudget,
    UnsupportedImage,
    decode_image,
    encode_image,
    read_header,
    read_image,
)


@pytest.fixture(scope="module")
def photo():
    return shared_path("data", "lfw_a", "lfw", "Aaron_Eckhart", "Aaron_Eckhart_0001.jpg")


def progressive(data: bytes) -> bytes:
    out = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(out, "JPEG", progressive=True, quality=90)
    return out.getvalue()


def test_a_header_that_lies_is_refused_before_anything_is_decoded(photo):
    lying = header_lying_jpeg(photo)  # 6 KB claiming 9000×4000: libjpeg would fill 108 MB with grey
    assert len(lying) < 8000 and lying.endswith(b"\xff\xd9")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ImageError, match=r"ends early: the header says 9000×4000 pixels") as caught:
        decode_image(lying, "lying.jpg")
    assert not isinstance(caught.value, (UnsupportedImage, ImageTooLarge)) and caught.value.code == "bad_image"
    with pytest.raises(ImageError, match="ends early"):
        read_header(lying, "lying.jpg")  # the header check alone finds it: nothing decoded
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KB: no 108 MB decode


@pytest.mark.parametrize("fraction", [0.9, 0.6, 0.3, 0.1])
def test_a_jpeg_cut_short_with_its_end_marker_put_back_is_refused(photo, fraction):
    data = photo.read_bytes()
    cut = data[: int(len(data) * fraction)] + b"\xff\xd9"  # passes a marker walk; libjpeg would fill grey
    with pytest.raises(ImageError, match="ends early"):
        decode_image(cut, "cut.jpg")
    with pytest.raises(ImageError, match="truncated"):
        decode_image(data[: int(len(data) * fraction)], "cut.jpg")  # no end marker at all


def test_whole_images_decode_as_before(photo, tmp_path):
    import cv2

    data = photo.read_bytes()
    expected = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert np.array_equal(decode_image(data, "a.jpg"), expected)  # the same pixels the CLI always had
    assert decode_image(progressive(data), "p.jpg").shape == (250, 250, 3)
    flat = encode_image(np.full((64, 48, 3), 128, np.uint8))  # libjpeg's fill colour, but complete: kept
    assert (decode_image(flat, "flat.jpg") == 128).all()
    corner = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    corner[-16:, -16:] = 128
    assert decode_image(encode_image(corner), "corner.jpg").shape == (64, 64, 3)
    for extension in (".png", ".webp", ".bmp", ".tiff"):
        assert decode_image(encode_image(expected, extension), extension).shape == (250, 250, 3)


def test_formats_are_sniffed_and_errors_never_show_objects(photo):
    with pytest.raises(UnsupportedImage, match="by its first bytes"):
        decode_image(b"GIF89a" + bytes(100), "a.gif")
    with pytest.raises(UnsupportedImage):
        decode_image(photo.read_bytes(), "a.jpg", formats=("png",))
    broken_png = b"\x89PNG\r\n\x1a\n" + bytes(40)
    with pytest.raises(ImageError) as caught:
        decode_image(broken_png, "broken.png")
    assert "BytesIO" not in str(caught.value) and "object at 0x" not in str(caught.value)
    webp = encode_image(np.zeros((32, 32, 3), np.uint8), ".webp")
    with pytest.raises(ImageError, match="ends early"):
        decode_image(webp[: len(webp) // 2], "half.webp")


def test_a_pixel_budget_bounds_what_one_call_decodes(photo):
    budget = PixelBudget(3 * 250 * 250)
    for _ in range(3):
        decode_image(photo.read_bytes(), "a.jpg", budget=budget)
    with pytest.raises(ImageTooLarge, match="more than its limit of 187,500 pixels"):
        decode_image(photo.read_bytes(), "a.jpg", budget=budget)
    with pytest.raises(ImageTooLarge, match="250×250 pixels, more than the limit of 1,000 pixels"):
        decode_image(photo.read_bytes(), "a.jpg", max_pixels=1000)


def test_the_cli_refuses_a_lying_jpeg_and_a_fifo_at_once(photo, tmp_path, capsys, lfw_people):
    lying = tmp_path / "lying.jpg"
    lying.write_bytes(header_lying_jpeg(photo))
    gallery = tmp_path / "g.db"
    model = ["--model", str(lfw_people.model), "--weights", str(lfw_people.weights)]
    assert facelearn(["enroll", str(gallery), "alice", str(lying), *model]) == 2
    assert "ends early" in capsys.readouterr().err and not gallery.exists()
    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match="not a regular file"):
        read_image(fifo)
    command = [sys.executable, "-m", "facelearn.cli", "enroll", str(gallery), "alice", str(fifo), *model]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)  # it used to block forever
    assert done.returncode == 2 and "not a regular file" in done.stderr and "Traceback" not in done.stderr
