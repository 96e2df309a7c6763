"""``facelearn embed`` and the engine options that embed, prepare and teacher-embed share."""

from __future__ import annotations

import argparse

from .options import BACKEND_HELP, DETECTOR_HELP, options_from


def add_engine_options(parser: argparse.ArgumentParser, batch_size: int = 16) -> None:
    group = parser.add_argument_group("engine (local process pool, or Ray Data)")
    group.add_argument("--engine", default="local", choices=["local", "ray"], help="default: local")
    group.add_argument("--workers", type=int, default=2, help="local: processes (0 = in this process)")
    group.add_argument("--batch-size", type=int, default=batch_size, help=f"photos per batch (default {batch_size})")
    group.add_argument("--address", help="ray: join this cluster (HOST:PORT or auto); default: a local Ray")
    group.add_argument("--actors", type=int, help="ray: actors (default: as many as the nodes hold)")
    group.add_argument("--cpus-per-actor", type=float, default=1.0, help="ray: CPUs an actor asks for (default 1)")
    group.add_argument("--gpus-per-actor", type=float, default=0.0, help="ray: GPUs an actor asks for (default 0)")
    group.add_argument("--object-store-memory", type=int, help="ray, local start: object store bytes")
    group.add_argument("--connect-timeout", type=float, default=10.0, help="ray: seconds to reach --address")


def engine_options(args: argparse.Namespace):
    from ..bulk.engine import EngineOptions

    return options_from(EngineOptions, args)


def command_embed(args: argparse.Namespace) -> None:
    from ..bulk.embed import EmbedOptions, embed_photos

    report = embed_photos(args.photos, args.output, options_from(EmbedOptions, args), engine_options(args))
    run = report["this_run"]
    failed = sum(len(report[status]) for status in ("missing", "unreadable", "too_large"))
    print(
        f"facelearn: {report['photos']:,} photos, {report['faces']:,} faces in {report['photos_with_faces']:,} of them "
        f"-> {args.output} (model {report['model_id']}); no face in {len(report['no_face']):,}, {failed:,} not read "
        f"(embed_report.json)"
    )
    if run["photos"]:
        print(f"  this run: {run['photos']:,} photos in {run['seconds']:.1f} s ({run['photos_per_second']} photos/s)")
    else:
        print("  nothing to do: every photo is in the output already")


def add_commands(commands) -> None:
    embed = commands.add_parser("embed", help="every face of every photo into Parquet (box, landmarks, embedding)")
    embed.add_argument("photos", help="a folder tree, a text file of paths or a Parquet with a 'path' column (or URI)")
    embed.add_argument("output", help="the folder of Parquet shards to write (or a URI, with --engine ray)")
    embed.add_argument("--model", required=True, help="a facelearn checkpoint, an arcface_torch .pth or an .onnx")
    embed.add_argument("--architecture", help="architecture of a plain state_dict (e.g. iresnet50)")
    embed.add_argument("--detector", default="retinaface", help=DETECTOR_HELP)
    embed.add_argument("--weights", help="folder of the detector weights (default: $FACELEARN_HOME/weights/...)")
    embed.add_argument("--backend", default="torch", help=BACKEND_HELP)
    embed.add_argument("--precision", default="auto", help="torch backend: auto, float32, bfloat16 or float16")
    embed.add_argument("--max-bytes", type=int, help="a larger photo file is reported, not read (default 64 MiB)")
    add_engine_options(embed)
    embed.set_defaults(func=command_embed)
