"""What every answer says about a face: where it is, how it was found and its quality (NumPy only, so that the
service's settings import without torch)."""

from __future__ import annotations


def face_fields(found, index: int | None = None) -> dict:
    """A detected face's box, five landmarks and detection score (rounded to 0.1 px, 4 digits), and its quality
    (None: no quality score yet); all None for a face given aligned."""
    if found is None:
        return {"box": None, "landmarks": None, "detection_score": None, "quality": None}
    return {
        "box": [round(float(v), 1) for v in found.boxes[index]],
        "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in found.landmarks[index]],
        "detection_score": round(float(found.scores[index]), 4),
        "quality": None,
    }
