"""How the recognition commands print their answers: the lines a person reads, or one JSON line each."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def quality_text(quality: float | None) -> str:
    return "n/a" if quality is None else f"{quality:.2f}"


def describe_box(face: dict) -> str:
    quality = "" if face.get("quality") is None else f", quality {face['quality']:.2f}"
    if face.get("box") is None:
        return f"aligned face{quality.replace(',', ' (', 1) + ')' if quality else ''}"
    x1, y1, x2, y2 = face["box"]
    return f"box {x1:.0f},{y1:.0f}-{x2:.0f},{y2:.0f} (detection {face['detection_score']:.2f}{quality})"


def decided_at(answer: dict) -> str:
    if not answer.get("calibrated", True):
        return f"uncalibrated threshold {answer['threshold']:.4f}"
    return f"threshold {answer['threshold']:.4f} at FMR {answer['fmr']:g}"


def print_verified(args: argparse.Namespace, reference: Path, photo: Path, result: dict) -> None:
    if args.json:
        print(json.dumps({"photo_a": str(reference), "photo_b": str(photo), **result.get("answer", result)}))
        return
    if "error" in result:
        print(f"facelearn: {reference} and {photo}: {result['error']}")
        return
    answer = result["answer"]
    verdict = "same person" if answer["same"] else "different people"
    print(
        f"facelearn: {reference} and {photo}: {verdict}: score {answer['score']:.4f}, {decided_at(answer)} "
        f"(model {answer['model']})"
    )
    for path, face in zip((reference, photo), answer["faces"], strict=True):
        print(f"  {path}: {describe_box(face)}")


def print_identified(args: argparse.Namespace, photo, result: dict) -> None:
    if args.json:
        body = {"faces": result["answer"]} if "answer" in result else {"error": result["error"]}
        print(json.dumps({"photo": str(photo), **body}))
        return
    if "error" in result:
        print(f"{photo}: {result['error']}")
        return
    print(f"{photo}:")
    for number, face in enumerate(result["answer"], start=1):
        decision = face["subject"] if face["subject"] is not None else "unknown"
        rate = f"threshold {face['threshold']:.4f} at FPIR {face['fpir']:g}" if face["fpir"] else decided_at(face)
        size = f"gallery of {face['gallery_size']:,}" + (
            f", calibrated for {face['calibrated_gallery_size']:,}" if face["calibrated_gallery_size"] else ""
        )
        where = describe_box(face) if "images" not in face else f"{face['images']} faces fused"
        print(f"  face {number}: {decision}  {where}; {rate}, {face['fusion']} scores, {size}")
        if face["warning"]:
            print(f"    warning: {face['warning']}")
        for candidate in face["candidates"]:
            print(f"    {candidate['subject']:<30} {candidate['score']:.4f}")


def print_enrolled(args: argparse.Namespace, results: list[dict], subjects) -> None:
    reports = [result.pop("photo_report", []) for result in results]
    if args.json:
        answer = {"subjects": results} if subjects.tree else results[0]
        print(json.dumps(answer))
        return
    for result, report in zip(results, reports, strict=True):
        if "skipped" in result:
            print(f"facelearn: {result['subject']!r} not enrolled: {result['skipped']}")
        else:
            print(f"facelearn: enrolled {result['subject']!r} in {args.gallery}: {result['faces']} faces")
        for path, status in report:
            print(f"  {path}: {status}")
    if subjects.not_images:
        print(f"  not photos, left alone: {len(subjects.not_images)} files, e.g. {subjects.not_images[0]}")
    if len(results) > 1:
        done = [r for r in results if "skipped" not in r]
        print(
            f"facelearn: {len(done)} of {len(results)} subjects enrolled, "
            f"{sum(len(r['no_face']) for r in results)} photos without a face, "
            f"{sum(len(r['unreadable']) for r in results)} unreadable"
        )


def print_calibration(args: argparse.Namespace, calibration, source: str, where: str) -> None:
    """``facelearn calibrate``: the thresholds at each FMR, or why an FMR is not supported."""
    if args.json:
        print(json.dumps(calibration.to_dict(), indent=2))
        return
    print(
        f"facelearn: calibrated {args.model} on {source}: {calibration.num_genuine:,} genuine and "
        f"{calibration.num_impostor:,} impostor pairs ({where})"
    )
    for point in calibration.points:
        if point["threshold"] is None:
            print(f"  FMR {point['fmr']:g}: not supported — needs {point['impostors_needed']:,} impostor pairs")
            continue
        low, high = point["fmr_interval"]
        print(
            f"  FMR {point['fmr']:g}: threshold {point['threshold']:.4f}  realised FMR {point['realised_fmr']:.2e} "
            f"(95 % {low:.1e}–{high:.1e})  FNMR {100 * point['fnmr']:.2f} %"
        )


def print_gallery_calibration(args: argparse.Namespace, calibration) -> None:
    """``facelearn calibrate-gallery``: the gallery's thresholds at each FPIR."""
    if args.json:
        print(json.dumps(calibration.to_dict(), indent=2))
        return
    print(
        f"facelearn: calibrated {args.gallery} ({calibration.gallery_size:,} subjects, {calibration.fusion} scores) on "
        f"{calibration.num_searches:,} non-mated searches of {calibration.num_people:,} people (stored in the gallery)"
    )
    for point in calibration.points:
        low, high = point["fpir_interval"]
        print(
            f"  FPIR {point['fpir']:g}: threshold {point['threshold']:.4f}  realised FPIR {point['realised_fpir']:.2e} "
            f"(95 % {low:.1e}–{high:.1e})"
        )
