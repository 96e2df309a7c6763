"""A request body as (parameters, images): JSON with base64 images, or a multipart form with files.

Both forms carry the same fields; image fields are bytes afterwards, the other fields are checked
against the route's parameter model. Multipart files are kept in memory (the body is already
bounded by the request limit), never spooled to a temporary file on disk.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from .problems import Problem
from .uploads import from_base64


def describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "body"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


async def read_body(
    request: Request, params: type[BaseModel], images: dict[str, bool], body_limit: int
) -> tuple[BaseModel, dict[str, list[bytes]]]:
    """``images`` names the image fields, True for a list of images, False for exactly one."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        fields, found = await json_fields(request, images)
    elif kind == "multipart/form-data":
        fields, found = await form_fields(request, images, body_limit)
    else:
        raise Problem(
            415,
            "unsupported_media_type",
            f"send application/json (base64 images) or multipart/form-data, not {kind or 'no content type'}",
        )
    try:
        parsed = params.model_validate(fields)
    except ValidationError as error:
        raise Problem(422, "invalid_request", describe(error)) from None
    return parsed, found


async def json_fields(request: Request, images: dict[str, bool]) -> tuple[dict, dict[str, list[bytes]]]:
    try:
        fields = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise Problem(400, "bad_request", "the body is not valid JSON") from None
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
            found[name] = [from_base64(item, f"{name}[{i}]") for i, item in enumerate(value)]
        else:
            found[name] = [from_base64(value, name)]
    return fields, found


async def form_fields(
    request: Request, images: dict[str, bool], body_limit: int
) -> tuple[dict, dict[str, list[bytes]]]:
    parser = MultiPartParser(request.headers, request.stream(), max_files=64, max_fields=64, max_part_size=64 * 1024)
    parser.spool_max_size = body_limit + 1  # files stay in memory: the body is bounded by the request limit
    try:
        form = await parser.parse()
    except MultiPartException as error:
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
                fields[name] = json.loads(value)
            except ValueError:
                raise Problem(422, "invalid_request", "metadata: a JSON object") from None
        else:
            fields[name] = value
    for name, many in images.items():
        if not many and len(found.get(name, [])) > 1:
            raise Problem(422, "invalid_request", f"{name}: one image, got {len(found[name])}")
    return fields, found
