"""``facelearn eval``'s recognition protocols: IJB templates and 1:N on folders. Parse → library call → print."""

from __future__ import annotations

import argparse


def add_recognition_arguments(parser: argparse.ArgumentParser) -> None:
    """``facelearn eval``'s IJB and 1:N options."""
    parser.add_argument("--ijb", metavar="DIR", help="IJB-B/C release folder (meta/, loose_crop/): 1:1 and 1:N")
    parser.add_argument("--target", default="IJBC", choices=["IJBC", "IJBB"], help="which IJB set (default IJBC)")
    parser.add_argument("--ijb-mode", default="N1D1F1", help="template mode for 1:N, insightface's name")
    parser.add_argument(
        "--tar-rule",
        default="at_most",
        choices=["at_most", "closest"],
        help="TAR at FAR: best with FAR <= target (default) or insightface's closest ROC point",
    )
    parser.add_argument(
        "--fpir-rule",
        default="at_most",
        choices=["at_most", "reference"],
        help="open-set threshold: FPIR <= target (default) or ijb_evals.py's index",
    )
    parser.add_argument(
        "--reference-quirks",
        action="store_true",
        help="IJB as insightface: unknown pair templates score as row 0, zero templates score 0 (default: errors)",
    )
    parser.add_argument("--gallery", metavar="DIR", help="1:N: enrolled identities, <DIR>/<identity>/<image>")
    parser.add_argument("--probes", metavar="DIR", help="1:N: queries, <DIR>/<identity>/<image> (any identity)")
    parser.add_argument("--distractors", metavar="DIR", help="1:N: images of other people (MegaFace-style)")


def run_ijb(args: argparse.Namespace, backbone, image_size: int, device) -> None:
    from ..eval.recognition import evaluate_ijb

    report = evaluate_ijb(
        backbone,
        args.ijb,
        args.target,
        image_size,
        args.output,
        batch_size=args.batch_size,
        device=device,
        mode=args.ijb_mode,
        tar_rule=args.tar_rule,
        fpir_rule=args.fpir_rule,
        unknown_template="row0" if args.reference_quirks else "error",
        zero_template="zero" if args.reference_quirks else "error",
    )
    print(f"\nfacelearn: {args.target} 1:1 templates, {report['images']} images, TAR at FAR ({args.tar_rule} rule)")
    fars = report["one_to_one"][args.ijb_mode]["fars"]
    print(f"  {'mode':<8}" + "".join(f"{far:>9g}" for far in fars) + f"{'AUC':>9}")
    for mode, row in report["one_to_one"].items():
        print(f"  {mode:<8}" + "".join(f"{100 * t:>9.2f}" for t in row["tars"]) + f"{row['auc']:>9.4f}")
    if "one_to_n" in report:
        print_identification(f"{args.target} 1:N ({args.ijb_mode}, mean of the two galleries)", report["one_to_n"])
    print(f"  {args.target.lower()}.json and ROC, CMC and DET plots in {args.output}/")


def run_identification(args: argparse.Namespace, backbone, image_size: int, device) -> None:
    from ..eval.recognition import evaluate_folders

    report = evaluate_folders(
        backbone,
        args.gallery,
        args.probes,
        args.distractors,
        image_size,
        args.output,
        fpir_rule=args.fpir_rule,
        batch_size=args.batch_size,
        flip=not args.no_flip,
        device=device,
    )
    title = (
        f"1:N, {report['gallery_identities']} enrolled identities, {report['num_mated']} mated and "
        f"{report['num_nonmated']} non-mated probes"
    )
    print_identification(title, report)
    if "with_distractors" in report:
        extra = report["with_distractors"]
        print(
            f"  with {extra['num_distractors']} distractors (MegaFace protocol, {extra['pairs']} pairs): "
            + ", ".join(f"rank-{k} {100 * v:.2f}%" for k, v in extra["rank_rates"].items())
        )
    print(f"  identification.json and CMC/DET plots in {args.output}/")


def print_identification(title: str, result: dict) -> None:
    print(f"\nfacelearn: {title}")
    print("  closed set: " + ", ".join(f"rank-{k} {100 * v:.2f}%" for k, v in result["cmc"].items()))
    if result["tpir"]:
        rule = result.get("threshold_rule", "")
        print(
            f"  open set ({rule} rule): "
            + ", ".join(f"TPIR@FPIR={f:g} {100 * t:.2f}%" for f, t in zip(result["fpir"], result["tpir"], strict=True))
        )
