"""A user's mistakes: each one is a clear error that names the key, file or path (exit 2, no
traceback), or a value that is now accepted; hostile images and the prepare command's outputs."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import shared_path
from helpers import TINY, tiny_config

from facelearn.align import download_weights
from facelearn.align.prepare import PrepareOptions
from facelearn.bulk.prepare import prepare_dataset
from facelearn.cli import main as facelearn
from facelearn.cli import recipe_path
from facelearn.config import ConfigError, load_config
from facelearn.data.images import ImageError, encode_image, read_image
from facelearn.data.synthetic import SyntheticFaces
from facelearn.errors import DataError
from facelearn.train.build import build_trainer, check_config


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


# ------------------------------------------------------------------ config values
def test_scientific_notation_is_a_float_on_the_command_line_and_in_yaml(tmp_path):
    config = load_config(None, ["optim.lr=1e10", "optim.weight_decay=5e-4", "head.margin=3E-1"])
    assert config.optim.lr == 1e10 and config.optim.weight_decay == 5e-4
    assert check_config(config).head.options == {"margin": 0.3}
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("optim:\n  lr: 1e-2\n  weight_decay: 5.e-4\nschedule:\n  min_lr_ratio: 1e-3\n")
    config = load_config(recipe)
    assert (config.optim.lr, config.optim.weight_decay, config.schedule.min_lr_ratio) == (1e-2, 5e-4, 1e-3)


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.steps=-5", "train.steps must be >= 0, got -5"),
        ("train.batch_size=0", "train.batch_size must be >= 1, got 0"),
        ("train.batch_size=-4", "train.batch_size must be >= 1, got -4"),
        ("optim.lr=0", "optim.lr must be > 0.0, got 0.0"),
        ("optim.lr=.nan", "optim.lr: expected a finite number"),
        ("optim.momentum=1.5", "optim.momentum must be < 1.0"),
        ("data.degrade.blur_prob=2", "data.degrade.blur_prob must be <= 1.0"),
        ("data.degrade.downsample_sizes=[16,0]", "data.degrade.downsample_sizes must be >= 2, got 0"),
        ("optim.name=adam", "optim.name: 'adam' is not one of: sgd, adamw"),
        ("train.amp=fp8", "train.amp: 'fp8' is not one of: auto, bf16, fp16, off"),
        ("distill.p=3", "distill.p: 3 is not one of: 1, 2"),
        ("train.resume=maybe", "train.resume: expected true or false"),
        ("eval.sets.5.name=x", "eval.sets has 2 entries (0 to 1)"),
        ("train.steps.x=1", "train.steps is a value, not a section"),
        ("data.num_identities=1", "data.num_identities must be >= 2"),
    ],
)
def test_impossible_values_are_refused_at_load_naming_the_key(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(None, [override])


def test_an_empty_optional_section_takes_its_defaults_when_one_key_is_set():
    config = load_config(None, ["eval.sets.0.degrade.blur_prob=0.5"])
    assert config.eval.sets[0].degrade.blur_prob == 0.5 and config.eval.sets[0].degrade.noise_prob == 0.0


def test_options_a_backbone_or_head_does_not_take_are_refused():
    with pytest.raises(ConfigError, match="model.dropout is not an option of model 'mobilefacenet'; it takes: width"):
        check_config(load_config(None, ["model.dropout=0.4"]))
    with pytest.raises(ConfigError, match="model.width: expected int"):
        check_config(load_config(None, ["model.width=wide"]))
    with pytest.raises(ConfigError, match="unknown train.task 'detect'; valid names: classification, ddl, distill"):
        check_config(load_config(None, ["train.task=detect"]))


def test_a_yaml_syntax_error_names_the_file_and_line(tmp_path, capsys):
    recipe = tmp_path / "broken.yaml"
    recipe.write_text("train:\n  steps: 3\n  batch_size: [1, 2\n")
    with pytest.raises(ConfigError, match=r"broken.yaml is not valid YAML: .*line \d+"):
        load_config(recipe)
    assert facelearn(["train", str(recipe)]) == 2
    assert error_line(capsys).startswith("facelearn: error: ")
    assert facelearn(["train", str(recipe_path("demo")), "train.batch_size=0"]) == 2
    assert "train.batch_size must be >= 1" in error_line(capsys)


# ------------------------------------------------------------------ data
def png_of_side(path: Path, side: int) -> Path:
    """A 1-bit grayscale PNG of side × side pixels, a few hundred KB: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor, row = zlib.compressobj(1), b"\0" * (1 + (side + 7) // 8)
    rows_per_block = max(1, (1 << 24) // len(row))
    body = b"".join(compressor.compress(row * min(rows_per_block, side - i)) for i in range(0, side, rows_per_block))
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body + compressor.flush()) + chunk(b"IEND", b"")
    )
    return path


def face_folder(root: Path, identities: int, images: int) -> Path:
    faces = SyntheticFaces(identities, images, 32, seed=0)
    for index in range(len(faces)):
        folder = root / f"person{faces.label(index)}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{index}.png").write_bytes(encode_image(faces.image(index), ".png"))
    return root


def test_a_huge_image_is_refused_from_its_header_and_skipped_in_training(tmp_path):
    assert png_of_side(tmp_path / "bomb.png", 20000).stat().st_size < 2_000_000
    with pytest.raises(ImageError, match=r"10000×10000 pixels, more than the limit of 64,000,000"):
        read_image(png_of_side(tmp_path / "large.png", 10000))
    with pytest.raises(ImageError, match=r"more than the limit of 64,000,000 pixels"):
        read_image(png_of_side(tmp_path / "bomb.png", 20000))
    root = face_folder(tmp_path / "faces", 2, 5)
    png_of_side(root / "person0" / "huge.png", 40000)
    summary = build_trainer(
        tiny_config(tmp_path / "run", "data.kind=folder", f"data.root={root}", "train.steps=2")
    ).fit()
    assert summary["step"] == 2 and summary["skipped_images"] >= 1


def test_one_identity_is_refused_and_an_empty_identity_folder_is_not_a_class(tmp_path, caplog):
    single = face_folder(tmp_path / "single", 1, 9)
    with pytest.raises(DataError, match="holds 1 identity: a classifier needs at least two"):
        build_trainer(tiny_config(tmp_path / "a", "data.kind=folder", f"data.root={single}"))
    two = face_folder(tmp_path / "two", 2, 5)
    (two / "nobody").mkdir()
    (two / "nobody" / "notes.txt").write_text("no image here")
    trainer = build_trainer(tiny_config(tmp_path / "b", "data.kind=folder", f"data.root={two}"))
    assert trainer.task.head.num_classes == 2
    assert "identity folders without images left out: nobody" in caplog.text


# ------------------------------------------------------------------ facelearn eval
def test_eval_argument_errors_are_one_line_each(tiny_run, tmp_path, capsys):
    capsys.readouterr()
    best = str(tiny_run / "best.pt")
    header_only = tmp_path / "header_only.txt"
    header_only.write_text("10 300\n")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    bad_index = tmp_path / "bad_index.txt"
    bad_index.write_text("1 2\nAlice 1 two\n")
    cases = [
        (["--synthetic", "20", "--folds", "1"], "the number of folds must be between 2 and 20, got 1"),
        (["--synthetic", "20", "--folds", "50"], "the number of folds must be between 2 and 20, got 50"),
        (["--synthetic", "1"], "--synthetic needs at least 2 pairs"),
        (["--synthetic", "4"], "the number of folds must be between 2 and 4, got 10"),
        (["--synthetic", "20", "--batch-size", "0"], "--batch-size must be at least 1, got 0"),
        (["--synthetic", "20", "--hard-split", "0"], "--hard-split is a down-sampling factor from 2"),
        (["--pairs", str(header_only), "--root", str(tmp_path)], "holds no pairs (only its header)"),
        (["--pairs", str(empty), "--root", str(tmp_path)], "empty.txt:1: expected the header"),
        (["--pairs", str(bad_index), "--root", str(tmp_path)], "bad_index.txt:2: expected 'name i j'"),
        ([], "nothing to evaluate"),
    ]
    for arguments, message in cases:
        assert facelearn(["eval", best, *arguments, "--output", str(tmp_path / "e")]) == 2, arguments
        line = error_line(capsys)
        assert line.startswith("facelearn: error: ") and message in line, (arguments, line)


def test_eval_of_another_width_names_the_mismatch_and_eval_names_what_it_wrote(tiny_run, tmp_path, capsys):
    capsys.readouterr()
    backbone = str(tiny_run / "backbone.pt")  # width 1, blocks 1-1-1-1, 32-d
    assert facelearn(["eval", backbone, "--architecture", "mbf", "--synthetic", "20"]) == 2  # mbf: width 2
    line = error_line(capsys)
    assert "tensors differ in shape" in line and "check the architecture named — --architecture" in line
    # eval's old --model still names the architecture, with a warning (elsewhere --model is the model file)
    assert (
        facelearn(["eval", backbone, "--model", "mobilefacenet", "--synthetic", "20", "--output", str(tmp_path)]) == 0
    )
    assert "eval --model is deprecated: name the architecture with --architecture" in capsys.readouterr().err
    assert facelearn(["eval", str(tiny_run / "best.pt"), "--synthetic", "20", "--output", str(tmp_path / "e")]) == 0
    out = capsys.readouterr().out
    assert "run directory" not in out and f"metrics.json, score histograms and ROC plots in {tmp_path / 'e'}" in out


def test_info_lines_are_not_printed_without_verbose(tmp_path, capsys):
    assert facelearn(["train", str(recipe_path("demo")), *TINY, "train.steps=3", f"train.output_dir={tmp_path}"]) == 0
    assert "INFO" not in capsys.readouterr().err
    assert "INFO facelearn.train: step 3 loss" in (tmp_path / "train.log").read_text()  # the file keeps them


def test_the_numpy_global_generator_is_seeded(tmp_path):
    np.random.seed(12345)
    build_trainer(tiny_config(tmp_path, "train.seed=3"))
    drawn = np.random.rand()
    np.random.seed(3)
    assert drawn == np.random.rand()


def test_downloaded_weights_are_readable_by_everyone_the_umask_allows(tmp_path):
    source = shared_path("weights", "mtcnn")
    old = os.umask(0o022)
    try:
        placed = download_weights("mtcnn", source.as_uri(), tmp_path / "weights")
    finally:
        os.umask(old)
    assert all(path.stat().st_mode & 0o777 == 0o644 for path in placed)


# ------------------------------------------------------------------ facelearn prepare
def test_prepare_with_missing_weights_stops_at_once_with_the_file_named(tmp_path):
    raw = face_folder(tmp_path / "raw", 2, 2)
    (tmp_path / "no_weights").mkdir()
    command = [sys.executable, "-m", "facelearn.cli", "prepare", str(raw), str(tmp_path / "out")]
    command += ["--weights", str(tmp_path / "no_weights"), "--workers", "2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)  # used to hang forever
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "pnet.pt" in result.stderr


def test_prepare_with_tampered_weights_names_the_file_and_its_hash(tmp_path, capsys):
    weights = tmp_path / "weights"
    shutil.copytree(shared_path("weights", "mtcnn"), weights)
    data = bytearray((weights / "rnet.pt").read_bytes())
    data[-10] ^= 0xFF
    (weights / "rnet.pt").write_bytes(bytes(data))
    raw = face_folder(tmp_path / "raw", 2, 2)
    assert facelearn(["prepare", str(raw), str(tmp_path / "out"), "--weights", str(weights), "--workers", "2"]) == 2
    assert "rnet.pt" in error_line(capsys)


def test_prepare_never_writes_into_its_source(tmp_path, capsys):
    raw = face_folder(tmp_path / "raw", 2, 2)
    before = {p: p.read_bytes() for p in raw.rglob("*") if p.is_file()}
    for output, relation in [(raw, "is the source"), (raw / "aligned", "lies inside"), (tmp_path, "holds")]:
        assert facelearn(["prepare", str(raw), str(output), "--crop", "center", "--workers", "0"]) == 2
        assert relation in error_line(capsys)
    assert {p: p.read_bytes() for p in raw.rglob("*") if p.is_file()} == before


def test_two_photos_with_one_stem_are_both_kept(tmp_path):
    raw = face_folder(tmp_path / "raw", 2, 2)
    image = read_image(next((raw / "person0").iterdir()))
    (raw / "person0" / "face.jpg").write_bytes(encode_image(image, ".jpg"))
    (raw / "person0" / "face.png").write_bytes(encode_image(image, ".png"))
    report = prepare_dataset(raw, tmp_path / "out", PrepareOptions(crop="center"), workers=0)
    assert report["faces_found"] == 6
    written = sorted(p.name for p in (tmp_path / "out" / "person0").iterdir())
    assert {"face.jpg.jpg", "face.png.jpg"} <= set(written) and len(written) == 4


def test_the_journal_does_not_depend_on_how_the_source_is_spelt(tmp_path, monkeypatch):
    face_folder(tmp_path / "raw", 3, 4)
    monkeypatch.chdir(tmp_path)
    first = prepare_dataset("raw", "out", PrepareOptions(crop="center"), workers=0)
    again = prepare_dataset(tmp_path / "raw", tmp_path / "out", PrepareOptions(crop="center"), workers=0)
    assert first["images_read"] == again["images_read"] == 12
    assert len((tmp_path / "out" / "prepare_journal.jsonl").read_text().splitlines()) == 12
    assert torch.equal(torch.tensor(first["faces_found"]), torch.tensor(again["faces_found"]))
