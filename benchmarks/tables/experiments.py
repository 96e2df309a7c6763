"""Tables of the experiments: DDL (docs/ddl.md) and distillation (docs/distillation.md)."""

from __future__ import annotations

import re

from .format import bold, count, fixed, mean_std, pct, table

DDL_RUNS = {
    "base (no fine-tuning)": "base, no fine-tuning",
    "arcface_down4x": "(a) ArcFace",
    "ddl_down4x": "(b) ArcFace + DDL",
    "ddl_down4x_lambda5": "(b) with λ × 5",
    "arcface_down5x_blur_noise": "(a) ArcFace",
    "ddl_down5x_blur_noise": "(b) ArcFace + DDL",
}
# the first row of a degradation names it in full, the rows after it in short
DDL_HARD = {"down4x": ("4× down (16 px)", "4× down"), "down5x_blur_noise": ("12 px + blur + noise",) * 2}
DDL_BOLD = {  # the comparisons the text discusses
    "ddl_down4x": {"easy_easy", "hard_hard", "easy_hard"},
    "ddl_down4x_lambda5": {"easy_hard"},
    "ddl_down5x_blur_noise": {"easy_easy", "hard_hard", "easy_hard"},
}
PAIR_SETS = ("easy_easy", "hard_hard", "easy_hard")


def ddl_experiment(result: dict) -> str:
    """results/ddl_experiment.json: accuracy (points) and d = E[S+] − E[S−] on EE, HH and EH pairs."""
    rows, named = [], set()
    for row in result["rows"]:
        hard = DDL_HARD[row["hard"]][row["hard"] in named]
        named.add(row["hard"])
        strong = DDL_BOLD.get(row["run"], set())
        accuracy = [bold(mean_std(row[s]["accuracy"], row[s]["accuracy_std"], unit=""), s in strong) for s in PAIR_SETS]
        d = [fixed(row[s]["d"], 3) for s in PAIR_SETS]
        gaps = fixed(100 * row["accuracy_gap_easy_minus_hard"], 2), fixed(row["d_gap_easy_minus_hard"], 3)
        rows.append([DDL_RUNS[row["run"]], hard, *accuracy, gaps[0], *d, gaps[1]])
    header = ["run", "hard =", "EE", "HH", "EH", "EE − HH", "d EE", "d HH", "d EH", "d EE − d HH"]
    return table(header, rows)


DISTILL_RUNS = {
    "teacher iresnet18": ("teacher iResNet-18 (600 steps)", False),
    "self_taught": ("self-taught MobileFaceNet", False),
    "l2": ("L2 on the final embedding (λ = 0.001)", False),
    "angular_final_p1": ("angular, final embedding, p = 1", False),
    "angular_final_p2": ("angular, final embedding, p = 2", False),
    "angular_all_stages_p1": ("angular, final + all four stages, p = 1", True),
}


def distill_experiment(result: dict) -> str:
    """results/distill_experiment.json: the iResNet-18 teacher into MobileFaceNet students."""
    rows = []
    for row in result["rows"]:
        label, strong = DISTILL_RUNS[row["run"]]
        gap = fixed(100 * row["gap_to_teacher"], 2) if "gap_to_teacher" in row else "—"
        rows.append(
            [
                bold(label, strong),
                bold(mean_std(row["accuracy"], row["accuracy_std"]), strong),
                bold(gap, strong),
                f"{fixed(row['parameters_m'], 2)} M",
                fixed(row["mflops"], 0),
                fixed(row["batch_1_ms"], 1),
                fixed(row["batch_64_ms"], 0),
            ]
        )
    header = ["run", "LFW folds 8–10", "gap to teacher", "parameters", "MFLOPs", "ms @ batch 1", "ms @ batch 64"]
    return table(header, rows)


RECIPE_STEPS = 300  # train.steps of configs/lfw_mbf_distill.yaml, for a run whose command leaves it
TEACHER = "teacher dlib (own pipeline)"
# in the order of the table: run → (label, the columns in bold: label, steps, accuracy, auc)
BLACKBOX_RUNS = {
    TEACHER: ("teacher: dlib ResNet (its own detector, landmarks, 150×150 chips)", ()),
    "self_taught": ("self-taught MobileFaceNet (ArcFace)", ()),
    "dlib_angular_p1": ("dlib → angular p = 1, + ArcFace (λ = 1)", ()),
    "dlib_angular_p2": ("dlib → angular p = 2, + ArcFace (λ = 1)", ()),
    "dlib_angular_p1_unlabelled": ("dlib → angular p = 1, + ArcFace, + unlabelled", ()),
    "dlib_angular_p1_no_arcface": ("dlib → angular p = 1, no ArcFace (raw answers)", ()),
    "dlib_centred_p1_weight10": ("dlib centred → angular p = 1, + ArcFace (λ = 10)", ()),
    "dlib_centred_p2_no_arcface": ("dlib centred → angular p = 2, no ArcFace", ()),
    "dlib_centred_p1_no_arcface": ("dlib centred → angular p = 1, no ArcFace", ()),
    "dlib_centred_p1_no_arcface_unlabelled": ("dlib centred → angular p = 1, no ArcFace, + unlabelled", ()),
    "dlib_centred_p1_no_arcface_unlabelled_600_steps": ("the same", ()),
    "dlib_centred_p1_no_arcface_unlabelled_1200_steps": ("the same", ()),
    "self_taught_1200_steps": ("self-taught", ()),
    "dlib_centred_p1_arcface_weight0.1_unlabelled_1200_steps": (
        "dlib centred → angular p = 1, ArcFace at 0.1, + unlabelled",
        (),
    ),
    "dlib_centred_p1_no_arcface_unlabelled_2400_steps": (
        "dlib centred → angular p = 1, no ArcFace, + unlabelled",
        ("label", "steps", "accuracy"),
    ),
    "dlib_centred_p1_arcface_weight0.1_unlabelled_2400_steps": (
        "dlib centred → angular p = 1, ArcFace at 0.1, + unlabelled",
        ("label", "steps", "accuracy", "auc"),
    ),
}


def steps(row: dict) -> str:
    if row["run"] == TEACHER:
        return "—"
    found = re.search(r"train\.steps=(\d+)", row["command"])
    return count(int(found.group(1)) if found else RECIPE_STEPS)


def val(row: dict) -> str:
    """TAR at the FAR-1e-3 threshold and the FAR realised there (none when no impostor passes)."""
    return f"{pct(row['val'])} ({fixed(row['far'], 4)})" if row["far"] else pct(row["val"])


def blackbox_distill(result: dict) -> str:
    """results/blackbox_distill.json: dlib into MobileFaceNet students; † = trained with native bf16."""
    by_run = {row["run"]: row for row in result["rows"]}
    rows = []
    for run, (label, strong) in BLACKBOX_RUNS.items():
        row = by_run[run]
        if row.get("trained_on", {}).get("native_bf16"):
            label += " †"
        cells = {
            "label": label,
            "steps": steps(row),
            "accuracy": mean_std(row["accuracy"], row["accuracy_std"]),
            "auc": fixed(row["auc"], 4),
        }
        rows.append([bold(text, key in strong) for key, text in cells.items()] + [val(row)])
    header = ["run", "steps", "LFW folds 8–10", "AUC", "VAL (TAR at the FAR-1e-3 threshold; realised FAR)"]
    return table(header, rows)


# photos run → (the same model's run in lfw_identification_blackbox.json, label)
STUDENTS = {
    "runs/lfw/distill_self_taught_1200_steps": ("self-taught, 1,200 steps", "self-taught, 1,200 steps"),
    "runs/lfw/distill_dlib_centred_p1_no_arcface_unlabelled_2400_steps": (
        "dlib centred, no ArcFace, + unlabelled, 2,400 steps",
        "dlib, no ArcFace, 2,400 steps",
    ),
    "runs/lfw/distill_dlib_centred_p1_arcface_weight0.1_unlabelled_1200_steps": (
        "dlib centred, ArcFace x0.1, + unlabelled, 1,200 steps",
        "dlib, ArcFace at 0.1, 1,200 steps",
    ),
}
STUDENT_BOLD = {  # the column's best where the text draws on it
    "photos_auc": "runs/lfw/distill_dlib_centred_p1_arcface_weight0.1_unlabelled_1200_steps",
    "rank1": "runs/lfw/distill_dlib_centred_p1_no_arcface_unlabelled_2400_steps",
    "rank5": "runs/lfw/distill_dlib_centred_p1_no_arcface_unlabelled_2400_steps",
    "tpir_1e-2": "runs/lfw/distill_self_taught_1200_steps",
}


def blackbox_beyond_pairs(photos: dict, identification: dict) -> str:
    """photos_pipeline_blackbox.json and lfw_identification_blackbox.json: the † students on photos and 1:N.

    A * marks a student that saw the distractors as unlabelled training faces.
    """
    one_to_n = {row["run"]: row for row in identification["rows"]}
    rows = []
    for photo in photos["results"]:
        ident_run, label = STUDENTS[photo["run"]]
        ident = one_to_n[ident_run]
        cells = {
            "photos": f"{pct(photo['accuracy'])} ({photo['true_accepts']}, {photo['false_accepts']})",
            "photos_auc": fixed(photo["auc_scored_pairs"], 3),
            "rank1": pct(ident["rank1"]),
            "rank5": pct(ident["rank5"]),
            "tpir_1e-2": pct(ident["tpir_at_fpir"]["0.01"]),
            "tpir_1e-1": pct(ident["tpir_at_fpir"]["0.1"]),
        }
        seen = "*" if "unlabelled" in ident_run else ""
        distractors = pct(ident["rank1_with_distractors"]) + seen
        rows.append([label] + [bold(text, STUDENT_BOLD.get(key) == photo["run"]) for key, text in cells.items()])
        rows[-1].append(distractors)
    first = photos["results"][0]
    different = first["pairs"] - first["same_pairs"]
    photos_header = f"photos: accuracy at the LFW threshold (TA/{first['same_pairs']}, FA/{different})"
    count_distractors = count(identification["rows"][0]["distractors"])
    header = [photos_header, "photos AUC", "1:N rank-1", "rank-5", "TPIR @ FPIR 1e-2", "@ 1e-1"]
    return table(["student", *header, f"rank-1 + {count_distractors} distractors"], rows)
