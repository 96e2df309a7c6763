"""The ``/v1`` routes. Each reads its body (JSON or multipart), finds faces, embeds them through the
batcher and answers; every decision carries the model, the FMR and the threshold it was taken at."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..deploy.gallery import DuplicateSubject, UnknownSubject
from . import schemas as s
from .bodies import read_body
from .problems import Problem, error_responses
from .service import Face, Service

IMAGE_ERRORS = (400, 413, 415, 422, 503, 504)
KEY_ERRORS = (401, 403)


def build_router(service: Service) -> APIRouter:
    router = APIRouter(prefix="/v1")

    async def body(request: Request, params, images: dict[str, bool], required: tuple[str, ...] = ()):
        parsed, found = await read_body(request, params, images, service.settings.max_request_bytes)
        for name in required:
            if not found.get(name):
                raise Problem(422, "invalid_request", f"{name}: an image is required")
        return parsed, found

    def route(method: str, path: str, answer, params=None, images=None, required=(), errors=(), **options):
        extra = s.request_body(params, images, required) if params else None
        return router.api_route(
            path,
            methods=[method],
            response_model=answer,
            responses=error_responses(*sorted({*errors, *KEY_ERRORS, 503, 504})),
            openapi_extra=extra,
            **options,
        )

    @route("POST", "/embed", s.EmbedAnswer, s.EmbedParams, {"image": False}, ("image",), IMAGE_ERRORS)
    async def embed(request: Request):
        """Every face of a photo (largest first) as a unit embedding, with its box and raw norm."""
        params, found = await body(request, s.EmbedParams, {"image": False}, ("image",))
        faces = await service.faces(found["image"][0], "image", params.aligned)
        embeddings, norms = await service.embed(faces)
        return {
            "model": service.require().model_id,
            "faces": [
                {"box": f.box, "embedding": e.tolist(), "norm": float(n)}
                for f, e, n in zip(faces, embeddings, norms, strict=True)
            ],
        }

    verify_images = {"image_a": False, "image_b": False}

    @route("POST", "/verify", s.VerifyAnswer, s.VerifyParams, verify_images, ("image_a",), (*IMAGE_ERRORS, 404))
    async def verify(request: Request):
        """Same person or not: two photos, or a photo (image_a) and an enrolled subject."""
        params, found = await body(request, s.VerifyParams, verify_images, ("image_a",))
        if bool(found.get("image_b")) == (params.subject is not None):
            raise Problem(422, "invalid_request", "give image_b or subject (one of them) to compare image_a with")
        fmr, threshold = service.threshold(params.fmr)
        uploads = [("image_a", found["image_a"][0])] + (
            [("image_b", found["image_b"][0])] if found.get("image_b") else []
        )
        faces = await asyncio.gather(*(service.one_face(d, n, params.aligned, params.single) for n, d in uploads))
        embeddings, _ = await service.embed(list(faces))
        if params.subject is None:
            score = float(embeddings[0] @ embeddings[1])
        else:
            gallery = service.require().gallery
            (hits,) = await service.in_pool(lambda: gallery.search(embeddings[:1], 1, subject=params.subject))
            if not hits:
                raise Problem(404, "unknown_subject", f"subject {params.subject!r} is not enrolled")
            score = hits[0][1]
        return {
            "score": score,
            "same": score > threshold,
            "threshold": threshold,
            "fmr": fmr,
            "model": service.require().model_id,
            "subject": params.subject,
            "boxes": [f.box for f in faces],
        }

    @route("POST", "/identify", s.IdentifyAnswer, s.IdentifyParams, {"image": False}, ("image",), IMAGE_ERRORS)
    async def identify(request: Request):
        """Every face of a photo: the k best subjects, and the best one if it passes the threshold at the
        FMR — else null (unknown). An empty gallery answers unknown with gallery_size 0."""
        params, found = await body(request, s.IdentifyParams, {"image": False}, ("image",))
        fmr, threshold = service.threshold(params.fmr)
        faces = await service.faces(found["image"][0], "image", params.aligned)
        embeddings, _ = await service.embed(faces)
        gallery = service.require().gallery
        size, results = await service.in_pool(lambda: (len(gallery), gallery.search(embeddings, params.k)))
        recognizer = service.require()
        answers = [
            recognizer.decision(candidates, threshold, fmr, face.box)
            for face, candidates in zip(faces, results, strict=True)
        ]
        return {"faces": answers, "gallery_size": size}

    async def enroll(subject: str, images: list[bytes], params, metadata: dict | None, append: bool) -> dict:
        picked = await asyncio.gather(
            *(service.one_face(data, f"images[{i}]", params.aligned, params.single) for i, data in enumerate(images)),
            return_exceptions=True,
        )
        chosen: list[Face] = []
        no_face: list[int] = []
        for i, result in enumerate(picked):
            if isinstance(result, Problem) and result.code == "no_face":
                no_face.append(i)
            elif isinstance(result, BaseException):
                raise result
            else:
                chosen.append(result)
        if not chosen:
            raise Problem(422, "no_face", f"no face found in any of the {len(images)} images: nothing enrolled")
        embeddings, norms = await service.embed(chosen)
        gallery = service.require().gallery
        try:
            faces = await service.write(
                lambda: gallery.enroll(subject, embeddings, norms.astype(float).tolist(), None, metadata, append)
            )
        except DuplicateSubject as error:
            raise Problem(409, "duplicate_subject", f"{error}: POST /v1/subjects/{{id}}/faces adds faces") from None
        return {"subject": subject, "faces": faces, "no_face": no_face}

    @route(
        "POST",
        "/subjects",
        s.Enrolled,
        s.SubjectParams,
        {"images": True},
        ("images",),
        (*IMAGE_ERRORS, 409),
        status_code=201,
    )
    async def create_subject(request: Request):
        """Enroll a new subject from one or more photos (the largest face of each)."""
        params, found = await body(request, s.SubjectParams, {"images": True}, ("images",))
        answer = await enroll(params.subject, found["images"], params, params.metadata, append=False)
        return JSONResponse(answer, status_code=201)

    @route(
        "POST",
        "/subjects/{subject}/faces",
        s.Enrolled,
        s.FacesParams,
        {"images": True},
        ("images",),
        (*IMAGE_ERRORS, 404),
    )
    async def add_faces(subject: str, request: Request):
        """Add faces to an enrolled subject."""
        params, found = await body(request, s.FacesParams, {"images": True}, ("images",))
        await known_subject(subject)
        return await enroll(subject, found["images"], params, None, append=True)

    async def known_subject(subject: str) -> dict:
        gallery = service.require().gallery
        listed = await service.in_pool(gallery.subjects)
        for entry in listed:
            if entry["subject"] == subject:
                return entry
        raise Problem(404, "unknown_subject", f"subject {subject!r} is not enrolled")

    @route("GET", "/subjects", s.SubjectList)
    async def list_subjects():
        """Every enrolled subject with its face count and metadata."""
        gallery = service.require().gallery
        return {"subjects": await service.in_pool(gallery.subjects)}

    @route("GET", "/subjects/{subject}", s.Subject, errors=(404,))
    async def get_subject(subject: str):
        return await known_subject(subject)

    @route("DELETE", "/subjects/{subject}", s.Deleted, errors=(404,))
    async def delete_subject(subject: str):
        """Remove a subject and every embedding of it; ``erased`` says whether the data is gone from the
        store's files yet (a reader's snapshot can hold it back: ``erasure`` says until when)."""
        gallery = service.require().gallery

        def delete() -> tuple[int, bool]:
            removed = gallery.delete(subject)  # committed: the subject is gone for every search from here
            return removed, gallery.checkpoint()  # SQLite: the WAL folded and truncated, never waiting on a reader

        try:
            removed, erased = await service.write(delete)
        except UnknownSubject:
            raise Problem(404, "unknown_subject", f"subject {subject!r} is not enrolled") from None
        return {"deleted": subject, "faces": removed, "erased": erased, "erasure": gallery.erasure}

    @router.get("/health", response_model=s.Health)
    async def health():
        """Liveness: the process answers."""
        return {"status": "ok"}

    @router.get("/ready", response_model=s.Ready, responses=error_responses(503))
    async def ready():
        """Readiness: the model is loaded and the gallery open."""
        recognizer = service.require()
        size = await service.in_pool(len, recognizer.gallery)
        settings = service.settings
        return {
            "ready": True,
            "model": recognizer.model_id,
            "gallery_size": size,
            "max_batch": settings.max_batch,
            "max_wait_ms": settings.max_wait_ms,
        }

    return router
