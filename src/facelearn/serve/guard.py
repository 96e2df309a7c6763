"""Around every request: the browser policy, API keys, the body limit, the time limit, the security
headers and the metrics — one ASGI layer.

* Browsers (``browsers.py``): the Host must be a name this service answers to (DNS rebinding), a
  write from another origin's page is refused (cross-site requests), and every answer carries the
  security headers. A request with both ``Content-Length`` and ``Transfer-Encoding`` (a smuggling
  attempt, RFC 9112 §6.1) is refused and its connection closed.
* Keys: ``X-API-Key: KEY`` or ``Authorization: Bearer KEY``, checked against the hashed key file
  whenever ``--keys`` names one (the service refuses to bind beyond loopback without it). The file
  is re-read when it changes, so a removed key stops working on the next request; a file that
  cannot be read refuses every keyed request (503) until it can. The page, the OpenAPI schema and
  the liveness/readiness probes are open.
* Body limit: a ``Content-Length`` above the limit is answered 413 before any of the body is read;
  a body without one is counted as it arrives and cut off at the limit.
* Time limit: a request that has not started its answer after ``timeout_s`` gets 504.
"""

from __future__ import annotations

import asyncio
import json
import time

from .browsers import security_headers
from .problems import Problem

OPEN_PATHS = {"/", "/v1/health", "/v1/ready", "/openapi.json", "/docs", "/docs/oauth2-redirect"}


async def send_problem(send, problem: Problem, close: bool = False) -> None:
    body = json.dumps(problem.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if problem.status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": problem.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Guard:
    def __init__(self, app, service):
        self.app, self.service = app, service

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), [500]
        headers = dict(scope["headers"])
        smuggled = b"transfer-encoding" in headers and b"content-length" in headers

        async def send_and_note(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message = {**message, "headers": [*message.get("headers", []), *security_headers(scope["path"])]}
            await send(message)

        try:
            if smuggled:
                raise Problem(400, "bad_request", "both Content-Length and Transfer-Encoding: send one of them")
            self.service.browsers.check(scope["method"], headers)
            self.check_key(scope)
            await self.guarded(scope, receive, send_and_note)
        except Problem as problem:
            if status[0] == 500:  # nothing sent yet
                await send_problem(send_and_note, problem, close=smuggled)
        finally:
            route = scope.get("route")
            self.service.metrics.observe(route.path if route else "other", status[0], time.perf_counter() - started)

    def check_key(self, scope) -> None:
        keys = self.service.keys
        if not keys.required or scope["path"] in OPEN_PATHS or scope["path"].startswith("/docs/"):
            return
        if not keys.refresh():
            raise Problem(503, "keys_unavailable", "the API key file cannot be read; the server log says why")
        headers = dict(scope["headers"])
        given = headers.get(b"x-api-key", b"").decode("latin-1")
        bearer = headers.get(b"authorization", b"").decode("latin-1")
        if not given and bearer.lower().startswith("bearer "):
            given = bearer[7:].strip()
        if not given:
            raise Problem(401, "missing_key", "an API key is required: send X-API-Key or Authorization: Bearer KEY")
        name = keys.check(given)
        if name is None:
            raise Problem(403, "wrong_key", "the API key is not valid (facelearn serve keys list shows the key names)")
        scope["facelearn.key"] = name  # who, for the audit log

    async def guarded(self, scope, receive, send) -> None:
        limit = self.service.settings.max_request_bytes
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise Problem(
                413, "request_too_large", f"the body is {int(declared):,} bytes, above the limit of {limit:,}"
            )
        received = [0]
        started = [False]

        async def counted_receive():
            message = await receive()
            if message["type"] == "http.request":
                received[0] += len(message.get("body", b""))
                if received[0] > limit:  # raised inside the route: its handler answers with the envelope
                    raise Problem(413, "request_too_large", f"the body is above the limit of {limit:,} bytes")
            return message

        async def noting_send(message):
            if message["type"] == "http.response.start":
                started[0] = True
            await send(message)

        try:
            await asyncio.wait_for(self.app(scope, counted_receive, noting_send), self.service.settings.timeout_s)
        except asyncio.TimeoutError:
            if not started[0]:
                raise Problem(
                    504, "timeout", f"no answer within {self.service.settings.timeout_s:g} s; try again later"
                ) from None
