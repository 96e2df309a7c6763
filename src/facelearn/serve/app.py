"""The FastAPI application: routes, the guard, one error envelope, the page, the docs, the metrics."""

from __future__ import annotations

import logging
import sqlite3
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException

from .. import __version__
from ..deploy.gallery import DuplicateSubject, UnknownFace, UnknownSubject
from ..errors import FacelearnError
from .bodies import describe
from .docs import add_docs
from .guard import Guard
from .problems import Problem
from .routes import router
from .service import Service

log = logging.getLogger("facelearn.serve")
HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}


def problem_response(problem: Problem) -> JSONResponse:
    return JSONResponse(problem.body(), status_code=problem.status)


def create_app(service: Service) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI):
        await service.start()
        yield
        await service.stop()

    app = FastAPI(
        title="facelearn",
        version=__version__,
        description="Face verification, identification and enrollment at a calibrated false-match rate.",
        lifespan=lifespan,
        docs_url=None,  # served from this machine (docs.py), never from a CDN
        redoc_url=None,
    )
    app.state.service = service
    app.include_router(router)
    app.add_middleware(Guard, service=service)

    @app.exception_handler(Problem)
    async def on_problem(_: Request, problem: Problem):
        return problem_response(problem)

    @app.exception_handler(UnknownSubject)
    async def on_unknown_subject(_: Request, error: UnknownSubject):
        return problem_response(Problem(404, "unknown_subject", str(error)))

    @app.exception_handler(UnknownFace)
    async def on_unknown_face(_: Request, error: UnknownFace):
        return problem_response(Problem(404, "unknown_face", f"{error} (GET /v1/subjects/{{id}}/faces lists them)"))

    @app.exception_handler(DuplicateSubject)
    async def on_duplicate_subject(_: Request, error: DuplicateSubject):
        return problem_response(
            Problem(409, "duplicate_subject", f"{error}: POST /v1/subjects/{{id}}/faces adds faces")
        )

    @app.exception_handler(sqlite3.Error)
    async def on_unwritable(_: Request, error: sqlite3.Error):  # made immutable, a full or read-only disk
        log.error("facelearn serve: the gallery cannot be written: %s", error)
        reason = "the gallery cannot be written now; the server log says why"
        return problem_response(Problem(503, "gallery_unavailable", reason))

    @app.exception_handler(FacelearnError)
    async def on_user_error(_: Request, error: FacelearnError):
        return problem_response(Problem(422, "invalid_request", str(error)))

    @app.exception_handler(RequestValidationError)
    async def on_invalid(_: Request, error: RequestValidationError):
        return problem_response(Problem(422, "invalid_request", describe(error)))

    @app.exception_handler(HTTPException)
    async def on_http(_: Request, error: HTTPException):
        code = HTTP_CODES.get(error.status_code, "bad_request")
        return problem_response(Problem(error.status_code, code, str(error.detail)))

    @app.exception_handler(Exception)
    async def on_bug(request: Request, error: Exception):
        log.exception("facelearn serve: internal error on %s %s", request.method, request.url.path)
        return problem_response(Problem(500, "internal", "an internal error; the server log has the details"))

    @app.get("/", include_in_schema=False)
    async def page():
        return HTMLResponse((resources.files("facelearn") / "serve" / "page" / "index.html").read_text())

    add_docs(app)

    @app.get("/metrics", include_in_schema=False)
    async def metrics():
        return Response(service.metrics.text(), media_type="text/plain; version=0.0.4")

    return app
