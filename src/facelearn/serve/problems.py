"""One JSON error envelope with stable codes: ``{"error": {"status": 413, "code": "image_too_large", "message": ...}}``.

A caller's mistake is answered with its code and a sentence that says what to do; it is never a
traceback, and the message never echoes image bytes or embeddings.
"""

from __future__ import annotations

from pydantic import BaseModel


class Problem(Exception):
    """A request the service refuses: HTTP status, a stable machine code, a human message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> dict:
        return {"error": {"status": self.status, "code": self.code, "message": self.message}}


class ErrorDetail(BaseModel):
    status: int
    code: str
    message: str


class ErrorEnvelope(BaseModel):
    error: ErrorDetail


CODES = {
    400: "bad_image, bad_base64, path_or_url, bad_request, bad_host",
    401: "missing_key",
    403: "wrong_key, cross_origin",
    404: "unknown_subject, not_found",
    409: "duplicate_subject",
    413: "request_too_large, image_too_large, too_many_images, too_many_pixels",
    415: "unsupported_format, unsupported_media_type",
    422: "no_face, several_faces, refused (every face below the enroll gate), invalid_request",
    503: "not_ready, keys_unavailable, gallery_unavailable",
    504: "timeout",
}


def error_responses(*statuses: int) -> dict:
    """The OpenAPI ``responses`` of a route: each status with the envelope and its codes."""
    return {status: {"model": ErrorEnvelope, "description": f"codes: {CODES[status]}"} for status in statuses}
