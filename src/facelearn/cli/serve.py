"""``facelearn serve`` and ``facelearn serve keys add|list|remove``: parse, then call the library."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from ..deploy.gallery import STORES
from ..errors import ConfigError
from ..serve.browsers import is_loopback
from ..serve.keys import KeyStore
from ..serve.settings import ServeSettings, model_threads
from ..serve.uploads import ImageLimits
from .options import BACKEND_HELP, DETECTOR_HELP, add_quality_options, options_from

MB = 1024 * 1024


def command_serve(args: argparse.Namespace) -> None:
    if args.serve_command == "keys":
        return command_keys(args)
    if not args.model or not args.gallery:
        raise ConfigError("facelearn serve needs --model and --gallery (or: facelearn serve keys add NAME --keys FILE)")
    try:
        import torch
        import uvicorn

        from ..serve.app import create_app
        from ..serve.connections import guarded_connections
        from ..serve.service import Service
    except ImportError as error:
        raise ConfigError(
            f"facelearn serve needs its extra ({error.name} is missing): pip install 'facelearn[serve]'"
        ) from None
    keys = KeyStore(args.keys, must_exist=True)
    if keys.required and not keys.keys:
        print(
            f"facelearn: warning: {args.keys} holds no keys: every keyed request is refused until one is added "
            f"(facelearn serve keys add NAME --keys {args.keys}; no restart needed)",
            file=sys.stderr,
        )
    if not is_loopback(args.host) and not keys.required:
        raise ConfigError(
            f"--host {args.host} is reachable from other machines: API keys are required "
            "(facelearn serve keys add NAME --keys FILE, then --keys FILE), or bind to 127.0.0.1"
        )
    if args.quality == "none" and args.min_quality > 0:
        raise ConfigError("--quality none leaves the enroll gate nothing to judge: add --min-quality 0")
    settings = options_from(
        ServeSettings,
        args,
        max_batch=1 if args.no_batching else args.max_batch,
        max_request_bytes=int(args.max_request_mb * MB),
        limits=ImageLimits(
            max_image_bytes=int(args.max_image_mb * MB),
            max_pixels=args.max_pixels,
            max_images=args.max_images,
            max_request_pixels=args.max_request_pixels,
        ),
        timeout_s=args.timeout,
        allowed_hosts=tuple(args.allowed_host),
        allowed_origins=tuple(args.allowed_origin),
        header_timeout_s=args.header_timeout,
    )
    logging.getLogger("facelearn.serve").setLevel(logging.INFO)
    connection_class = guarded_connections(settings)
    print(
        f"facelearn: serving {args.model} on http://{args.host}:{args.port} (page /, API /v1, docs /docs; "
        "/v1/ready answers 503 until the model is loaded)",
        flush=True,
    )
    server: uvicorn.Server | None = None

    def stop_serving(_: Exception) -> None:  # a model or gallery that cannot load: exit with the reason
        server.should_exit = True

    torch.set_num_threads(model_threads(settings))  # this process serves: before any thread runs the model
    service = Service(settings, keys, on_load_error=stop_serving)
    config = uvicorn.Config(
        create_app(service),
        host=args.host,
        port=args.port,
        http=connection_class,  # header-read deadline and a connection cap (slow-loris)
        access_log=args.access_log,  # off by default: request paths name subjects
        timeout_graceful_shutdown=int(args.timeout) + 1,
        log_level="info",
    )
    server = uvicorn.Server(config)
    server.run()
    if service.load_error is not None:
        raise ConfigError(f"facelearn serve stopped: the model or gallery cannot be loaded: {service.load_error}")


def command_keys(args: argparse.Namespace) -> None:
    if not args.keys:
        raise ConfigError("give the key file: facelearn serve keys ... --keys FILE")
    store = KeyStore(args.keys)
    if args.action == "add":
        if not args.name:
            raise ConfigError("facelearn serve keys add NAME --keys FILE")
        key = store.add(args.name)
        print(key)  # alone on stdout, so that `| head -1` or `$(...)` takes it whole
        print(f"(the key of {args.name!r}: shown once, stored only as a hash in {args.keys})", file=sys.stderr)
    elif args.action == "remove":
        if not args.name:
            raise ConfigError("facelearn serve keys remove NAME --keys FILE")
        store.remove(args.name)
        print(f"facelearn: removed the key {args.name!r} from {args.keys}")
    else:
        print(json.dumps(store.names(), indent=2))


def add_commands(commands) -> None:
    serve = commands.add_parser("serve", help="the REST API and page (FastAPI): verify, identify, enroll, delete")
    serve.add_argument(
        "--model", help="a named model (dlib), a facelearn checkpoint, a plain state_dict (arcface_torch) or an .onnx"
    )
    serve.add_argument("--gallery", help="the gallery: an SQLite file, or a Milvus URI / milvus-lite file with --store")
    serve.add_argument("--store", choices=STORES.names())
    serve.add_argument("--index", default="exact", help="SQLite gallery index: exact, hnsw, ivf, SQfp16, HNSW32")
    serve.add_argument("--architecture", help="of a plain state_dict (r50, mbf, iresnet50…); default: read from it")
    serve.add_argument("--detector", default="retinaface", help=DETECTOR_HELP)
    serve.add_argument("--weights", help="folder of the detector weights (default: $FACELEARN_HOME/weights/...)")
    serve.add_argument("--backend", default="auto", help=BACKEND_HELP)
    serve.add_argument("--host", default="127.0.0.1", help="beyond loopback only with --keys holding keys")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--keys", help="the hashed API key file (keys are required whenever it holds any)")
    serve.add_argument("--fmr", type=float, default=1e-3, help="default false-match rate of decisions")
    serve.add_argument(
        "--threshold", type=float, help="a cosine threshold for a model without calibration (answers: fmr null)"
    )
    serve.add_argument("--max-batch", type=int, default=32, help="most faces in one model call")
    serve.add_argument("--max-wait-ms", type=float, default=5.0, help="longest a face waits for others to batch with")
    serve.add_argument("--no-batching", action="store_true", help="one model call per request")
    serve.add_argument("--workers", type=int, default=2, help="threads decoding and detecting (a detector each)")
    serve.add_argument(
        "--model-threads", type=int, help="threads of each model call (default: the cores not given to --workers)"
    )
    serve.add_argument("--max-request-mb", type=float, default=25.0)
    serve.add_argument("--max-image-mb", type=float, default=10.0)
    serve.add_argument("--max-pixels", type=int, default=40_000_000, help="refused from the header, before decoding")
    serve.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    serve.add_argument("--max-images", type=int, default=32, help="most images in one request (JSON or multipart)")
    serve.add_argument(
        "--max-request-pixels", type=int, default=100_000_000, help="pixels of all images of a request, from headers"
    )
    serve.add_argument(
        "--allowed-host", action="append", default=[], help="another name the service is reached by ('*': any)"
    )
    serve.add_argument(
        "--allowed-origin", action="append", default=[], help="a web origin whose pages may write (e.g. https://x.org)"
    )
    serve.add_argument("--header-timeout", type=float, default=10.0, help="seconds to send a request's headers")
    serve.add_argument("--max-connections", type=int, default=1000, help="open connections (capped below ulimit -n)")
    serve.add_argument("--audit-log", help="the audit log of gallery changes (default: <gallery>.audit.log)")
    serve.add_argument("--access-log", action="store_true", help="log each request line (paths name subjects)")
    add_quality_options(serve)
    serve.set_defaults(func=command_serve, serve_command=None)
    actions = serve.add_subparsers(dest="serve_command")
    keys = actions.add_parser("keys", help="API keys: add (printed once), list, remove")
    keys.add_argument("action", choices=["add", "list", "remove"])
    keys.add_argument("name", nargs="?")
    keys.add_argument("--keys", required=True, help="the key file")
