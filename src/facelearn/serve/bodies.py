"""A request body as (parameters, images): JSON with base64 images, or a multipart form with files.

Parameters (not images) may also come as query parameters (``?k=1&fmr=0.01``), as the OpenAPI
document says; one given both in the query and in the body, or a query parameter the route does
not take, is refused (never silently ignored). Both forms carry the same fields; image fields are
bytes afterwards, the other fields are checked against the route's parameter model. Both share one
image-count limit. Multipart files are kept in memory (the body is already bounded by the request
limit), never spooled to a temporary file on disk. JSON (the body, or a form's ``metadata`` field)
is refused when nested deeper than ``MAX_DEPTH`` — before it is parsed, so no recursion limit is
ever reached — or when it holds NaN or Infinity, which are not JSON.
"""

from __future__ import annotations

import json
import re

import numpy as np
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from .problems import Problem
from .uploads import from_base64

MAX_DEPTH = 32
STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
OPENING, CLOSING = np.frombuffer(b"[{", np.uint8), np.frombuffer(b"]}", np.uint8)


def parse_json(text: str | bytes, where: str):
    """JSON → Python, refusing what no request needs: deep nesting (measured before parsing) and NaN/Infinity."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    if text.count("[") + text.count("{") > MAX_DEPTH and nesting(text) > MAX_DEPTH:
        raise Problem(400, "bad_request", f"{where}: JSON nested deeper than {MAX_DEPTH} levels")
    return json.loads(text, parse_constant=refuse_constant)


def nesting(text: str) -> int:
    """The deepest nesting of brackets outside strings (vectorised: a body may be megabytes)."""
    codes = np.frombuffer(STRING.sub("", text).encode("utf-8"), np.uint8)
    steps = np.isin(codes, OPENING).astype(np.int64) - np.isin(codes, CLOSING)
    return int(np.cumsum(steps).max(initial=0))


def refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "body"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


async def read_body(
    request: Request, params: type[BaseModel], images: dict[str, bool], body_limit: int, max_images: int
) -> tuple[BaseModel, dict[str, list[bytes]]]:
    """``images`` names the image fields, True for a list of images, False for exactly one."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        fields, found = await json_fields(request, images, max_images)
    elif kind == "multipart/form-data":
        fields, found = await form_fields(request, images, body_limit, max_images)
    else:
        raise Problem(
            415,
            "unsupported_media_type",
            f"send application/json (base64 images) or multipart/form-data, not {kind or 'no content type'}",
        )
    merge_query(request, fields, images)
    try:
        parsed = params.model_validate(fields)
    except ValidationError as error:
        raise Problem(422, "invalid_request", describe(error)) from None
    return parsed, found


def merge_query(request: Request, fields: dict, images: dict[str, bool]) -> None:
    """The query's parameters into ``fields``: each at most once, never an image, never also in the body."""
    for name, value in request.query_params.multi_items():
        if name in images:
            raise Problem(400, "path_or_url", f"{name}: send the image in the body; a query value is never opened")
        if name in fields:
            raise Problem(422, "invalid_request", f"{name}: given twice (in the query and in the body, or repeated)")
        if name != "metadata":
            fields[name] = value
            continue
        try:
            fields[name] = parse_json(value, "metadata")
        except (ValueError, UnicodeDecodeError) as error:
            detail = f" ({error})" if "not JSON" in str(error) else ""
            raise Problem(422, "invalid_request", f"metadata: a JSON object{detail}") from None


def too_many(count: int, limit: int) -> Problem:
    return Problem(413, "too_many_images", f"{count} images in one request, above the limit of {limit}")


async def json_fields(
    request: Request, images: dict[str, bool], max_images: int
) -> tuple[dict, dict[str, list[bytes]]]:
    try:
        fields = parse_json(await request.body(), "the body")
    except (ValueError, UnicodeDecodeError) as error:
        detail = f" ({error})" if "not JSON" in str(error) else ""
        raise Problem(400, "bad_request", f"the body is not valid JSON{detail}") from None
    if not isinstance(fields, dict):
        raise Problem(400, "bad_request", "the JSON body must be an object")
    found = {}
    for name, many in images.items():
        if name not in fields:
            continue
        value = fields.pop(name)
        if many:
            if not isinstance(value, list):
                raise Problem(422, "invalid_request", f"{name}: a list of base64 images")
            if len(value) > max_images:
                raise too_many(len(value), max_images)
            found[name] = [from_base64(item, f"{name}[{i}]") for i, item in enumerate(value)]
        else:
            found[name] = [from_base64(value, name)]
    return fields, found


async def form_fields(
    request: Request, images: dict[str, bool], body_limit: int, max_images: int
) -> tuple[dict, dict[str, list[bytes]]]:
    parser = MultiPartParser(
        request.headers, request.stream(), max_files=max_images, max_fields=64, max_part_size=64 * 1024
    )
    parser.spool_max_size = body_limit + 1  # files stay in memory: the body is bounded by the request limit
    try:
        form = await parser.parse()
    except MultiPartException as error:
        if error.message.startswith("Too many files"):
            raise too_many(max_images + 1, max_images) from None
        raise Problem(400, "bad_request", f"the multipart form cannot be read: {error.message}") from None
    fields, found = {}, {}
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            if name not in images:
                raise Problem(422, "invalid_request", f"{name}: an unexpected file (image fields: {', '.join(images)})")
            found.setdefault(name, []).append(await value.read())
        elif name in images:
            raise Problem(
                400,
                "path_or_url" if value.strip() else "bad_request",
                f"{name}: upload the image as a file part; a text value (a path or URL?) is never opened",
            )
        elif name == "metadata":
            try:
                fields[name] = parse_json(value, "metadata")
            except ValueError as error:
                detail = f" ({error})" if "not JSON" in str(error) else ""
                raise Problem(422, "invalid_request", f"metadata: a JSON object{detail}") from None
        else:
            fields[name] = value
    for name, many in images.items():
        if not many and len(found.get(name, [])) > 1:
            raise Problem(422, "invalid_request", f"{name}: one image, got {len(found[name])}")
    return fields, found
