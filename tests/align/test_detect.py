"""Detectors on real photos: six faces in the group photo with plausible five-point geometry,
agreement between MTCNN and RetinaFace, odd image formats, large images, and weights checks."""

from __future__ import annotations

import io
import shutil

import cv2
import numpy as np
import pytest
from conftest import shared_path

from facelearn.align import Faces, WeightsError, build_detector, choose_face, download_weights, nms
from facelearn.align.weights import KNOWN_WEIGHTS
from facelearn.data.images import decode_image, read_image

DETECTORS = ("mtcnn", "retinaface")


@pytest.fixture(scope="module", params=DETECTORS)
def detector(request):
    return build_detector(request.param, str(shared_path("weights", request.param)))


@pytest.fixture(scope="module")
def group_photo():
    return read_image(shared_path("data", "photos", "facenet_pytorch", "multiface.jpg"))


@pytest.fixture(scope="module")
def lfw_face():
    return read_image(shared_path("data", "lfw_a", "lfw", "Aaron_Eckhart", "Aaron_Eckhart_0001.jpg"))


def assert_plausible_landmarks(faces: Faces) -> None:
    """Upright frontal-ish faces: eyes level and apart, nose below the eyes, mouth below the nose,
    left features left of right ones, all five points inside the (slightly grown) box."""
    for box, points in zip(faces.boxes, faces.landmarks, strict=True):
        left_eye, right_eye, nose, left_mouth, right_mouth = points
        eye_distance = right_eye[0] - left_eye[0]
        width = box[2] - box[0]
        assert 0.2 * width < eye_distance < 0.7 * width
        assert abs(right_eye[1] - left_eye[1]) < 0.5 * eye_distance
        assert max(left_eye[1], right_eye[1]) < nose[1] < min(left_mouth[1], right_mouth[1])
        assert left_eye[0] < nose[0] < right_eye[0]
        assert left_mouth[0] < right_mouth[0]
        grown = 0.1 * width
        assert np.all(points[:, 0] > box[0] - grown) and np.all(points[:, 0] < box[2] + grown)
        assert np.all(points[:, 1] > box[1] - grown) and np.all(points[:, 1] < box[3] + grown)


def test_finds_the_six_faces_of_the_group_photo(detector, group_photo):
    faces = detector.detect(group_photo)
    assert len(faces) == 6
    assert faces.scores.min() > 0.9
    assert_plausible_landmarks(faces)
    overlap = [nms(faces.boxes, faces.scores, 0.1)]  # six separate people: no box overlaps another
    assert len(overlap[0]) == 6


def test_mtcnn_and_retinaface_agree(group_photo):
    mtcnn = build_detector("mtcnn", str(shared_path("weights", "mtcnn"))).detect(group_photo)
    retina = build_detector("retinaface", str(shared_path("weights", "retinaface"))).detect(group_photo)
    for points in mtcnn.landmarks:
        distances = np.linalg.norm(retina.landmarks.mean(1) - points.mean(0), axis=1)
        other = retina.landmarks[np.argmin(distances)]
        eye_distance = np.linalg.norm(points[1] - points[0])
        errors = np.linalg.norm(other - points, axis=1) / eye_distance  # normalised as in landmark benchmarks
        assert errors.max() < 0.3 and errors.mean() < 0.15


def test_no_face_is_an_empty_result(detector):
    noise = np.random.default_rng(0).integers(0, 40, (240, 320, 3), dtype=np.uint8)
    assert len(detector.detect(noise)) == 0
    assert len(detector.detect(np.zeros((200, 200, 3), np.uint8))) == 0


def test_choose_largest_or_central(group_photo, detector):
    faces = detector.detect(group_photo)
    largest = choose_face(faces, group_photo.shape, "largest")
    assert faces.areas()[largest] == faces.areas().max()
    central = choose_face(faces, group_photo.shape, "central")
    centres = (faces.boxes[:, :2] + faces.boxes[:, 2:]) / 2
    distances = np.linalg.norm(centres - [600, 315], axis=1)
    assert distances[central] == distances.min()
    with pytest.raises(ValueError, match="no face"):
        choose_face(Faces.empty(), group_photo.shape)


def encoded(image: np.ndarray, extension: str, **pil_options) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format={".png": "PNG", ".jpg": "JPEG"}[extension], **pil_options)
    return buffer.getvalue()


def test_grayscale_rgba_16_bit_and_exif_rotated_images(detector, lfw_face):
    reference = detector.detect(lfw_face).landmarks[0]
    gray = lfw_face[:, :, 0]
    rgba = np.dstack([lfw_face, np.full(gray.shape, 255, np.uint8)])
    ok, sixteen = cv2.imencode(".png", gray.astype(np.uint16) * 257)
    assert ok
    from PIL import Image

    rotated = Image.fromarray(np.ascontiguousarray(np.rot90(lfw_face, 1)))  # stored on its side ...
    exif = rotated.getexif()
    exif[0x0112] = 6  # ... with the EXIF tag that says "turn 90° clockwise to view"
    buffer = io.BytesIO()
    rotated.save(buffer, format="JPEG", quality=95, exif=exif)
    for data in (encoded(gray, ".png"), encoded(rgba, ".png"), sixteen.tobytes(), buffer.getvalue()):
        image = decode_image(data)
        assert image.shape == lfw_face.shape and image.dtype == np.uint8
        faces = detector.detect(image)
        assert len(faces) == 1
        np.testing.assert_allclose(faces.landmarks[0], reference, atol=3.0)


def test_large_images_are_detected_downscaled_and_reported_in_original_pixels(lfw_face):
    detector = build_detector("mtcnn", str(shared_path("weights", "mtcnn")), max_size=250)
    small = detector.detect(lfw_face)
    large_image = cv2.resize(lfw_face, (2000, 2000), interpolation=cv2.INTER_CUBIC)
    large = detector.detect(large_image)  # runs on a 250×250 copy, answers in 2000×2000 pixels
    assert len(large) == 1
    np.testing.assert_allclose(large.landmarks[0], small.landmarks[0] * 8, rtol=0, atol=8 * 1.5)
    np.testing.assert_allclose(large.boxes[0], small.boxes[0] * 8, rtol=0, atol=8 * 3)
    with pytest.raises(ValueError, match="HWC uint8 RGB"):
        detector.detect(lfw_face[:, :, 0])


def test_weights_with_the_wrong_hash_are_refused(tmp_path):
    source = shared_path("weights", "mtcnn")
    for name in KNOWN_WEIGHTS["mtcnn"]:
        shutil.copy(source / name, tmp_path / name)
    with open(tmp_path / "rnet.pt", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(WeightsError, match=r"rnet\.pt.*expected bbb937de"):
        build_detector("mtcnn", str(tmp_path))
    with pytest.raises(WeightsError, match="not found"):
        build_detector("retinaface", str(tmp_path))


def test_download_helper_verifies_before_placing(tmp_path):
    source = shared_path("weights", "mtcnn")
    placed = download_weights("mtcnn", source.resolve().as_uri(), tmp_path / "ok")
    assert sorted(p.name for p in placed) == sorted(KNOWN_WEIGHTS["mtcnn"])
    assert len(build_detector("mtcnn", str(tmp_path / "ok")).detect(np.zeros((50, 50, 3), np.uint8))) == 0
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    for name in KNOWN_WEIGHTS["mtcnn"]:
        (tampered / name).write_bytes((source / name).read_bytes()[:-1])
    with pytest.raises(WeightsError, match="sha256"):
        download_weights("mtcnn", tampered.as_uri(), tmp_path / "bad")
    assert not any((tmp_path / "bad").iterdir())  # nothing half-downloaded is left to look valid
