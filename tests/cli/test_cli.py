"""The facelearn command: train, eval and their error messages."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import shared_path
from helpers import TINY

from facelearn.cli import main, recipe_path
from facelearn.data.lfw_split import write_pairs
from facelearn.data.pairs import read_lfw_pairs


def test_train_then_eval_from_the_command_line(tmp_path, capsys):
    overrides = [*TINY, f"train.output_dir={tmp_path / 'run'}"]
    assert main(["train", str(recipe_path("demo")), *overrides]) == 0
    out = capsys.readouterr().out
    assert "trained 6 steps" in out and "unseen" in out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["step"] == 6
    code = main(["eval", str(tmp_path / "run" / "best.pt"), "--synthetic", "20", "--output", str(tmp_path / "eval")])
    assert code == 0
    results = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert set(results) == {"synthetic_unseen", "synthetic_unseen_hard"}
    split = ["--synthetic", "20", "--hard-split", "4", "--folds", "5", "--output", str(tmp_path / "split")]
    assert main(["eval", str(tmp_path / "run" / "best.pt"), *split]) == 0
    results = json.loads((tmp_path / "split" / "metrics.json").read_text())
    assert {"synthetic_unseen_easy_easy", "synthetic_unseen_hard_hard", "synthetic_unseen_easy_hard"} <= set(results)
    assert len(results["synthetic_unseen_easy_hard"]["fold_accuracies"]) == 5


def test_version(capsys):
    import facelearn

    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0 and capsys.readouterr().out.strip() == f"facelearn {facelearn.__version__}"


def test_demo_ends_by_enrolling_and_identifying_through_the_recognizer(tmp_path, capsys):
    assert main(["demo", "--output", str(tmp_path / "demo"), *TINY]) == 0
    out = capsys.readouterr().out
    assert "impostor pairs of unseen people" in out and "strangers taken for someone" in out
    assert (tmp_path / "demo" / "gallery.db").is_file()
    from facelearn.models.checkpoint import load_checkpoint

    calibration = load_checkpoint(tmp_path / "demo" / "best.pt")["calibration"]
    assert calibration["num_impostor"] == 600 * 599 // 2 - 200 * 3  # every pair of 600 images, 3 per person
    assert main(["demo", "--output", str(tmp_path / "demo"), *TINY]) == 0  # a rerun makes its gallery anew


def test_eval_reads_an_insightface_bin(tmp_path, capsys):
    small_lfw = shared_path("data", "insightface_bin", "small_lfw.bin")
    assert main(["train", str(recipe_path("demo")), *TINY, "data.image_size=112", f"train.output_dir={tmp_path}"]) == 0
    # a plain state_dict: its architecture, embedding and input size read from its keys and shapes
    assert main(["eval", str(tmp_path / "backbone.pt"), "--bin", str(small_lfw), "--output", str(tmp_path / "p")]) == 0
    code = main(["eval", str(tmp_path / "best.pt"), "--bin", str(small_lfw), "--output", str(tmp_path / "e")])
    assert code == 0
    assert json.loads((tmp_path / "e" / "metrics.json").read_text())["small_lfw"]["num_pairs"] == 10


@pytest.mark.parametrize(
    "override,message",
    [
        ("optim.lrr=0.1", "unknown config key 'optim.lrr'; valid keys here: name, lr"),
        ("head.name=arcfase", "unknown head 'arcfase'; valid names: adacos, adaface, arcface"),
        ("data.kind=folder", "needs data.root"),
    ],
)
def test_bad_input_exits_with_a_clear_message(tmp_path, capsys, override, message):
    code = main(["train", str(recipe_path("demo")), *TINY, f"train.output_dir={tmp_path}", override])
    assert code == 2
    assert message in capsys.readouterr().err


def test_missing_dataset_folder(tmp_path, capsys):
    args = [*TINY, f"train.output_dir={tmp_path}", "data.kind=folder", f"data.root={tmp_path / 'nope'}"]
    assert main(["train", str(recipe_path("demo")), *args]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_label_sorted_pairs_file_is_refused_or_stratified_in_training_and_eval(tmp_path, capsys):
    lfw = shared_path("data", "lfw_a")
    listed = read_lfw_pairs(lfw / "pairs.txt")
    pairs = tmp_path / "sorted_list" / "pairs.txt"
    pairs.parent.mkdir()
    write_pairs(pairs, listed[:4] + listed[300:304], folds=1)  # 4 genuine pairs, then 4 impostor pairs
    eval_set = f"{{name: sorted_list, kind: pairs, path: {pairs}, root: {lfw / 'lfw'}, folds: 2"
    train = ["train", str(recipe_path("demo")), *TINY, f"train.output_dir={tmp_path / 'run'}"]
    refused = "pair set 'sorted_list': fold 1 of 2 (pairs 1-4) would choose its threshold on the other folds"
    assert main([*train, f"eval.sets=[{eval_set}}}]"]) == 2
    assert refused in capsys.readouterr().err  # refused before training starts
    assert main([*train, f"eval.sets=[{eval_set}, stratify: true}}]"]) == 0
    assert "2 stratified folds" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["verification"]["sorted_list"]["fold_split"] == "stratified"
    evaluate = ["eval", str(tmp_path / "run" / "best.pt"), "--pairs", str(pairs), "--root", str(lfw / "lfw")]
    evaluate.append("--no-detect")  # the folds are the point here, not the faces (tests/eval/test_eval_photos.py)
    assert main([*evaluate, "--folds", "2", "--output", str(tmp_path / "e")]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"facelearn: error: {refused}") and "no genuine" in error and "--stratify" in error
    assert main([*evaluate, "--folds", "2", "--stratify", "--output", str(tmp_path / "e")]) == 0
    assert "2 stratified folds" in capsys.readouterr().out
    result = json.loads((tmp_path / "e" / "metrics.json").read_text())["sorted_list"]
    assert result["fold_split"] == "stratified" and len(result["fold_accuracies"]) == 2


def test_a_deployment_command_imports_no_training_code_and_training_ends_are_still_answered(tmp_path):
    """The training engine (and matplotlib behind it) costs seconds to import: only training loads it."""
    code = (
        "import sys\nfrom facelearn.cli import main\n"
        f"assert main(['gallery', 'list', {str(tmp_path / 'none.db')!r}]) == 2\n"
        "assert 'facelearn.train.engine' not in sys.modules, 'imported'\n"
        "from facelearn.train.engine import TrainingDiverged, TrainingStopped\n"
        "import facelearn.cli.deploy as deploy\n"
        "def diverge(args): raise TrainingDiverged('loss is NaN')\n"
        "def stop(args): raise TrainingStopped('stopped by SIGTERM', 143)\n"
        "for func, code in ((diverge, 1), (stop, 143)):\n"
        "    deploy.command_gallery = func  # the parser is built at each main(): it takes this one\n"
        "    assert main(['gallery', 'list', 'x']) == code, code\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "training stopped: loss is NaN" in done.stderr and "stopped by SIGTERM" in done.stderr
