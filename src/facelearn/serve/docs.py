"""``/docs``: the Swagger UI, served from this machine (no CDN), so that it works with no network.

The assets come from the ``swagger-ui-bundle-v2`` package (Swagger UI 5, which reads OpenAPI 3.1),
a dependency of the ``serve`` extra, under ``/docs/assets/``; the page and its start-up script are
served here, so that the page's policy allows scripts from this origin only. Without the package
``/docs`` says so and points to ``/openapi.json``. ReDoc is not served (its script would come from
a CDN): ``/openapi.json`` is the schema for any other viewer.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response

ASSETS = "/docs/assets"
PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>facelearn API</title>
<link rel="stylesheet" href="{ASSETS}/swagger-ui.css"><link rel="icon" href="{ASSETS}/favicon-32x32.png"></head>
<body><div id="swagger-ui"></div>
<script src="{ASSETS}/swagger-ui-bundle.js"></script><script src="/docs/start.js"></script></body></html>
"""
START = 'window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true});\n'
MISSING = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>facelearn API</title></head>
<body><p>The interactive documentation needs the <code>swagger-ui-bundle-v2</code> package
(<code>pip install 'facelearn[serve]'</code>). The API's OpenAPI schema is at
<a href="/openapi.json">/openapi.json</a>.</p></body></html>
"""


def add_docs(app: FastAPI) -> None:
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        swagger_ui_path = None

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return HTMLResponse(PAGE if swagger_ui_path is not None else MISSING)

    @app.get("/docs/start.js", include_in_schema=False)
    async def start():
        return Response(START, media_type="text/javascript")

    if swagger_ui_path is not None:
        from starlette.staticfiles import StaticFiles

        app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")
