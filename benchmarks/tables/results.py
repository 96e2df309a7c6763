"""Tables of the demo (README.md) and of the LFW recipe (docs/results.md, docs/heads.md)."""

from __future__ import annotations

from .format import bold, count, fixed, fmr, mean_std, pct, table

DEMO_SETS = {"synthetic_unseen": "easy (as rendered)", "synthetic_unseen_hard": "hard (degraded)"}


def demo(result: dict) -> str:
    """results/demo.json: the 10-fold protocol on unseen synthetic pairs, easy and degraded."""
    header = ["unseen synthetic identities", "pairs", "10-fold accuracy", "AUC", "EER", "TAR@FAR=1e-3"]
    rows = [
        [
            DEMO_SETS[row["set"]],
            count(row["pairs"]),
            mean_std(row["accuracy"], row["accuracy_std"]),
            fixed(row["auc"], 4),
            pct(row["eer"], 2),
            pct(row["tar_at_far_1e-3"]),
            fixed(row["threshold_cosine"], 3),
        ]
        for row in result["rows"]
    ]
    return table([*header, "cosine threshold"], rows)


def demo_recognition(result: dict) -> str:
    """results/demo_avx2.json: the demo's gallery step (enroll, then identify through the Recognizer)."""
    r = result["recognition"]
    header = [f"identification, {r['enrolled']} enrolled", "rank-1", f"recognised at FMR {fmr(r['fmr'])}"]
    probes = f"{r['mated_probes']} mated / {r['stranger_probes']} stranger probes"
    row = [probes, pct(r["rank1"]), pct(r["recognised"]), pct(r["strangers_accepted"])]
    return table([*header, "strangers taken for someone"], [row])


# run → (model, preprocessing, bold, mark after the training time)
LFW_RUNS = {
    "mbf_detect": ("MobileFaceNet (1.05 M)", "facelearn detect + align (MTCNN)", True, ""),
    "mbf_center": ("MobileFaceNet", "fixed centre crop (60 % of the image)", False, ""),
    "mbf_resize": ("MobileFaceNet", "LFW-a's own alignment, whole image resized", False, ""),
    "r18_detect": (
        "iResNet-18 (13.3 M), dropout 0.4, light blur/down-sampling",
        "facelearn detect + align",
        False,
        "*",  # trained beside another job: see the footnote under the table
    ),
}


def lfw_recipe(result: dict) -> str:
    """results/lfw_recipe.json: one recipe, three preprocessings and a larger backbone."""
    rows = []
    for row in result["rows"]:
        model, preprocessing, strong, mark = LFW_RUNS[row["run"]]
        accuracy = mean_std(row["accuracy"], row["accuracy_std"])
        rows.append(
            [
                model,
                bold(preprocessing, strong),
                bold(accuracy, strong),
                fixed(row["auc"], 3),
                pct(row["eer"]),
                f"{fixed(row['train_minutes'], 1)} min{mark}",
            ]
        )
    header = ["model", "preprocessing", "LFW folds 8–10 accuracy", "AUC", "EER", "train time"]
    return table(header, rows)


IDENTIFICATION_MODELS = {"LFW recipe, MobileFaceNet (detect)": ("MobileFaceNet, detect + align, fp32", "mbf_detect")}


def lfw_identification(identification: dict, rerun: dict) -> str:
    """results/lfw_identification.json (1:N) beside the pairs accuracy of lfw_recipe_fp32_rerun.json."""
    pairs = {row["run"]: row for row in rerun["rows"]}
    rows = []
    for row in identification["rows"]:
        model, run = IDENTIFICATION_MODELS[row["run"]]
        tpir = row["tpir_at_fpir"]
        rows.append(
            [
                model,
                mean_std(pairs[run]["accuracy"], pairs[run]["accuracy_std"]),
                pct(row["rank1"]),
                pct(row["rank5"]),
                pct(tpir["0.01"]),
                pct(tpir["0.1"]),
                f"{pct(row['rank1_with_distractors'])} ({count(row['distractor_pairs'])} pairs)",
            ]
        )
    distractors = count(identification["rows"][0]["distractors"])
    header = ["model", "LFW folds 8–10 accuracy", "rank-1", "rank-5", "TPIR @ FPIR 1e-2", "TPIR @ FPIR 1e-1"]
    return table([*header, f"rank-1 among {distractors} distractors (MegaFace protocol)"], rows)


PHOTO_MODELS = {"runs/lfw/mbf_detect": "MobileFaceNet", "runs/lfw/r18_detect": "iResNet-18"}


def photos_pipeline(result: dict) -> str:
    """results/photos_pipeline.json: deepface's labelled web photos at each model's LFW threshold."""
    rows = []
    for row in result["results"]:
        different = row["pairs"] - row["same_pairs"]
        rows.append(
            [
                PHOTO_MODELS[row["run"]],
                f"{pct(row['accuracy'])} (threshold {fixed(row['threshold_cosine_from_lfw'], 3)})",
                f"{row['true_accepts']} / {row['same_pairs']}",
                f"{row['false_accepts']} / {different}",
                fixed(row["auc_scored_pairs"], 3),
                f"{fixed(row['mean_cosine_same'], 3)} / {fixed(row['mean_cosine_different'], 3)}",
                pct(row["accuracy_best_threshold_on_these_pairs"]),
            ]
        )
    header = ["model", "accuracy at the LFW threshold", "same pairs accepted", "different pairs accepted", "AUC"]
    return table([*header, "mean cos same / different", "best threshold on these pairs (context only)"], rows)


DETECTORS = {"mtcnn": "MTCNN", "retinaface": "RetinaFace MobileNet-0.25"}


def detection_speed(result: dict) -> str:
    """results/detection_speed.json: ms per image (detect + align every face) on a portrait and a group."""
    cells: dict[str, dict[str, str]] = {}
    for row in result["rows"]:
        ms = row["ms_per_image"]
        if row["image"].startswith("lfw"):
            cell = f"{fixed(ms, 1)} ms ({fixed(1000 / ms, 0)} images/s)"
        else:
            cell = f"{fixed(ms, 0)} ms ({fixed(1000 / ms, 1)} images/s)"
        cells.setdefault(row["detector"], {})[row["image"]] = cell
    rows = [[DETECTORS[name], by_image["lfw 250x250"], by_image["group 1200x630"]] for name, by_image in cells.items()]
    return table(["detector", "LFW image 250×250 (1 face)", "group photo 1200×630 (6 faces)"], rows)


HEAD_NOTES = {
    "arcface": "(m = 0.5)",
    "subcenter_arcface": "(K = 3)",
    "circle": "(class-level)",
    "triplet": "(batch-hard)",
}


def head_comparison(result: dict) -> str:
    """results/head_comparison.json: every head, same budget, best accuracy first."""
    rows = []
    for row in sorted(result["rows"], key=lambda row: -row["accuracy"]):
        name = " ".join(filter(None, [f"`{row['head']}`", HEAD_NOTES.get(row["head"])]))
        accuracy = mean_std(row["accuracy"], row["accuracy_std"])
        rows.append([name, accuracy, fixed(row["auc"], 3), pct(row["eer"]), pct(row["val"])])
    return table(["head", "accuracy", "AUC", "EER", "VAL"], rows)
