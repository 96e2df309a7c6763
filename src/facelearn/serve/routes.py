"""The ``/v1`` routes: each parses its body, calls one method of the service and shapes the answer.

A route's body is declared once, as a :class:`BodySpec` (parameters and image fields): it makes
both the OpenAPI request body and the parsing. Decisions, search and thresholds live in the
Recognizer; a store's errors become answers in ``app.py`` (404, 409, 503), not here.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from ..deploy.subject_ids import lookup_id
from . import schemas as s
from .bodies import read_body
from .problems import Problem, error_responses
from .service import Service
from .uploads import check_request

IMAGE_ERRORS = (400, 413, 415, 422, 503, 504)
KEY_ERRORS = (401, 403)

router = APIRouter(prefix="/v1")


def current_service(request: Request) -> Service:
    return request.app.state.service


SERVICE = Depends(current_service)


@dataclass
class Body:
    params: object  # the route's parameter model, validated
    images: dict[str, list[bytes]]  # image field → its uploads

    def image(self, name: str) -> bytes | None:
        return self.images[name][0] if self.images.get(name) else None


@dataclass
class BodySpec:
    """A route's body: a parameter model and its image fields (True: a list of images, False: one).
    ``parsed`` is the route's argument default that reads it."""

    params: type
    images: dict[str, bool]
    required: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.parsed = Depends(self.read)

    async def read(self, request: Request) -> Body:
        service = current_service(request)
        limits = service.settings.limits
        parsed, found = await read_body(
            request, self.params, self.images, service.settings.max_request_bytes, limits.max_images
        )
        for name in self.required:
            if not found.get(name):
                raise Problem(422, "invalid_request", f"{name}: an image is required")
        await service.in_pool(check_request, found, limits)  # count, headers, pixels in all: before any decode
        return Body(parsed, found)

    def openapi(self) -> dict:
        return s.request_body(self.params, self.images, self.required)


def endpoint(method: str, path: str, answer, spec: BodySpec | None = None, errors=(), **options):
    return router.api_route(
        path,
        methods=[method],
        response_model=answer,
        responses=error_responses(*sorted({*errors, *KEY_ERRORS, 503, 504})),
        openapi_extra=spec.openapi() if spec else None,
        **options,
    )


EMBED = BodySpec(s.EmbedParams, {"image": False, "images": True})
VERIFY = BodySpec(s.VerifyParams, {"image_a": False, "image_b": False}, ("image_a",))
IDENTIFY = BodySpec(s.IdentifyParams, {"image": False}, ("image",))
NEW_SUBJECT = BodySpec(s.SubjectParams, {"images": True}, ("images",))
MORE_FACES = BodySpec(s.FacesParams, {"images": True}, ("images",))


@endpoint("POST", "/embed", s.EmbedAnswer, EMBED, IMAGE_ERRORS)
async def embed(body: Body = EMBED.parsed, service: Service = SERVICE):
    """Every face of a photo (largest first) as a unit embedding, with its box and raw norm; or of several
    photos or aligned faces in one request (``images``: one model call for all, each face saying which
    upload it is in; the photos without a face are listed in ``no_face``)."""
    if (body.image("image") is None) == (not body.images.get("images")):
        raise Problem(422, "invalid_request", "give image (one upload) or images (several): exactly one of the two")
    if body.image("image") is not None:
        return await service.embedded(await service.faces(body.image("image"), "image", body.params.aligned))
    return await service.embedded_many(body.images["images"], body.params.aligned)


@endpoint("POST", "/verify", s.VerifyAnswer, VERIFY, (*IMAGE_ERRORS, 404))
async def verify(body: Body = VERIFY.parsed, service: Service = SERVICE):
    """Same person or not: two photos, or a photo (image_a) and an enrolled subject."""
    if (body.image("image_b") is None) == (body.params.subject is None):
        raise Problem(422, "invalid_request", "give image_b or subject (one of them) to compare image_a with")
    uploads = [(name, body.image(name)) for name in ("image_a", "image_b") if body.image(name) is not None]
    return await service.verify(uploads, body.params)


@endpoint("POST", "/identify", s.IdentifyAnswer, IDENTIFY, IMAGE_ERRORS)
async def identify(body: Body = IDENTIFY.parsed, service: Service = SERVICE):
    """Every face of a photo: the k best subjects, and the best one if it passes the threshold at the
    FMR, or at the FPIR for the gallery's size (fpir) — else null (unknown). The answer says which rate,
    the gallery's size now and when calibrated, and warns when the gallery has outgrown its FPIR
    threshold. An empty gallery answers unknown with gallery_size 0."""
    p = body.params
    if p.fmr is not None and p.fpir is not None:
        raise Problem(422, "invalid_request", "give fmr or fpir, not both: a decision holds at one rate")
    await service.identification_rule(p.fmr, p.fpir)  # an unsupported rate is refused before decoding
    faces = await service.faces(body.image("image"), "image", p.aligned)
    return await service.identify(faces, p.k, p.fmr, p.fpir)


@endpoint("POST", "/subjects", s.Enrolled, NEW_SUBJECT, (*IMAGE_ERRORS, 409), status_code=201)
async def create_subject(request: Request, body: Body = NEW_SUBJECT.parsed, service: Service = SERVICE):
    """Enroll a new subject from one or more photos (the largest face of each)."""
    p = body.params
    answer = await service.enroll(p.subject, body.images["images"], p, p.metadata, append=False)
    await service.record(request, "enroll", answer["subject"], answer["faces"])
    return JSONResponse(answer, status_code=201)


@endpoint("POST", "/subjects/{subject}/faces", s.Enrolled, MORE_FACES, (*IMAGE_ERRORS, 404))
async def add_faces(request: Request, subject: str, body: Body = MORE_FACES.parsed, service: Service = SERVICE):
    """Add faces to an enrolled subject."""
    enrolled = await service.subject(lookup_id(subject))  # 404 before any photo is decoded
    answer = await service.enroll(enrolled["subject"], body.images["images"], body.params, None, append=True)
    await service.record(request, "add", answer["subject"], answer["faces"] - enrolled["faces"])
    return answer


@endpoint("GET", "/subjects", s.SubjectList)
async def list_subjects(service: Service = SERVICE):
    """Every enrolled subject with its face count and metadata."""
    return {"subjects": await service.subjects()}


@endpoint("GET", "/subjects/{subject}", s.Subject, errors=(404,))
async def get_subject(subject: str, service: Service = SERVICE):
    return await service.subject(lookup_id(subject))


@endpoint("DELETE", "/subjects/{subject}", s.Deleted, errors=(404,))
async def delete_subject(request: Request, subject: str, service: Service = SERVICE):
    """Remove a subject and every embedding of it; ``erased`` says whether the data is gone from the
    store's files yet (a reader's snapshot can hold it back: ``erasure`` says until when)."""
    answer = await service.delete(subject)
    await service.record(request, "delete", answer["deleted"], answer["faces"])
    return answer


@endpoint("GET", "/subjects/{subject}/faces", s.FaceList, errors=(404,))
async def list_faces(subject: str, service: Service = SERVICE):
    """A subject's faces in the order enrolled: each one's id (to delete it), quality and source."""
    subject = lookup_id(subject)
    return {"subject": subject, "faces": await service.enrolled_faces(subject)}


@endpoint("DELETE", "/subjects/{subject}/faces/{face_id}", s.FaceDeleted, errors=(404,))
async def delete_face(request: Request, subject: str, face_id: str, service: Service = SERVICE):
    """Remove one face (a bad photo) of a subject, erased as a deleted subject is. Its last face takes the
    subject with it (name and metadata): ``subject_deleted`` says so."""
    answer = await service.delete_face(subject, face_id)
    gone = answer["subject_deleted"]
    await service.record(
        request, "delete_face", answer["subject"], 1, face=answer["deleted_face"], subject_deleted=gone
    )
    return answer


@router.get("/health", response_model=s.Health)
async def health():
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/ready", response_model=s.Ready, responses=error_responses(503))
async def ready(service: Service = SERVICE):
    """Readiness: the model is loaded and the gallery open."""
    return await service.ready()
