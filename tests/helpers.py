"""Helpers several test modules share: a tiny training recipe, weight comparison, a free port, head fixtures,
an identity folder on disk. (Test modules never import one another.)"""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest
import torch

from facelearn.config import load_config
from facelearn.data.images import encode_image
from facelearn.models.checkpoint import load_checkpoint, step_checkpoints


def write_folder(root, corrupt=False):
    for identity in ("alice", "bob"):
        (root / identity).mkdir(parents=True)
        for k in range(3):
            image = np.full((112, 112, 3), 40 * k + (100 if identity == "bob" else 0), np.uint8)
            (root / identity / f"{k}.jpg").write_bytes(encode_image(image))
    if corrupt:
        (root / "bob" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")


DTYPES = {"float64": torch.float64, "float32": torch.float32}


def run_head(head, fixture, dtype, weight=None):
    inputs = fixture["inputs"]
    x = torch.tensor(inputs["x"], dtype=dtype, requires_grad=True)
    W = torch.tensor(weight if weight is not None else inputs["W"], dtype=dtype)
    y = torch.tensor(inputs["y"])
    head = head.to(dtype)
    with torch.no_grad():
        head.weight.copy_(W)
    out = head(x, y)
    out.loss.backward()
    return out, x.grad, head.weight.grad


def assert_matches(head, record, fixture, dtype_name, atol=1e-5):
    out, grad_x, grad_W = run_head(head, fixture, DTYPES[dtype_name])
    ref = record[dtype_name]
    np.testing.assert_allclose(out.logits.detach().numpy(), ref["logits"], rtol=1e-5, atol=atol)
    assert out.loss.item() == pytest.approx(ref["loss"], rel=1e-5, abs=atol)
    np.testing.assert_allclose(grad_x.numpy(), ref["grad_x"], rtol=1e-5, atol=atol)
    np.testing.assert_allclose(grad_W.numpy(), ref["grad_W"], rtol=1e-5, atol=atol)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DDL = [
    "train.task=ddl",
    "ddl.pairs=4",
    "ddl.students=[{name: low, degrade: {downsample_prob: 1.0, downsample_sizes: [8]}}]",
]


TINY = [
    "model.name=mobilefacenet",
    "model.width=1",
    "model.blocks=[1,1,1,1]",
    "model.embedding_size=32",
    "data.num_identities=6",
    "data.images_per_identity=4",
    "data.image_size=32",
    "data.num_workers=0",
    "train.batch_size=8",
    "train.steps=6",
    "train.checkpoint_every=3",
    "train.log_every=3",
    "train.keep_last=5",
    "schedule.warmup_steps=2",
    "optim.lr=0.05",
    "eval.sets=[{name: unseen, kind: synthetic, num_pairs: 20}]",
]


NOT_MBF = ["model.width=null", "model.blocks=null"]  # switching TINY to another backbone


def tiny_config(run_dir, *overrides):
    return load_config(None, [*TINY, f"train.output_dir={run_dir}", *overrides])


def weights(run_dir):
    return load_checkpoint(step_checkpoints(run_dir)[-1])["task"]


def kill_at_step_5(trainer) -> None:
    """Run ``trainer`` and interrupt it in its fifth step, as a kill between two checkpoints."""
    original, calls = trainer.task.forward, {"n": 0}

    def killed_at_step_5(batch):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return original(batch)

    trainer.task.forward = killed_at_step_5
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()


def assert_same_weights(first_run, second_run) -> None:
    first, second = weights(first_run), weights(second_run)
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key


def untrained_model(path, seed: int = 0, embedding_size: int = 32):
    """A facelearn checkpoint of an untrained MobileFaceNet for 48-px faces: what the bulk tests embed with
    (the pipeline's mechanics, not a model's accuracy; seconds instead of the two minutes of training)."""
    from facelearn.models import build_backbone
    from facelearn.models.checkpoint import FORMAT
    from facelearn.schema import to_dict

    torch.manual_seed(seed)
    config = load_config(
        None,
        [
            "model.name=mobilefacenet",
            "model.width=1",
            "model.blocks=[1,1,1,1]",
            f"model.embedding_size={embedding_size}",
            "data.image_size=48",
        ],
    )
    backbone = build_backbone(config.model, 48)
    state = {f"backbone.{name}": value for name, value in backbone.state_dict().items()}
    torch.save({"format": FORMAT, "config": to_dict(config), "task": state}, path)
    return path


def lfw_photos(root, count: int, per_person: int = 2):
    """``count`` real LFW-a photos as ``root/<person>/<photo>`` (links), ``per_person`` of each person in name order."""
    from conftest import shared_path

    lfw = shared_path("data", "lfw_a", "lfw")
    made = 0
    for person in sorted(p for p in lfw.iterdir() if p.is_dir()):
        for photo in sorted(person.iterdir())[:per_person]:
            if made == count:
                return root
            (root / person.name).mkdir(parents=True, exist_ok=True)
            (root / person.name / photo.name).symlink_to(photo)
            made += 1
    return root


def lfw_strangers(root, taken: set[str], count: int):
    """One photo each of ``count`` LFW-a people (in name order) not in ``taken``, as ``root/<person>/<photo>``
    (links): non-mated searches for a gallery that holds the people in ``taken``."""
    from conftest import shared_path

    lfw = shared_path("data", "lfw_a", "lfw")
    people = [p for p in sorted(lfw.iterdir()) if p.is_dir() and p.name not in taken][:count]
    for person in people:
        (root / person.name).mkdir(parents=True)
        photo = sorted(person.iterdir())[0]
        (root / person.name / photo.name).symlink_to(photo)
    return root


def wait_ready(http, seconds: float = 60.0) -> None:
    """Wait until an in-process service (TestClient) has loaded its model: it loads in the background."""
    for _ in range(int(seconds * 10)):
        answer = http.get("/v1/ready")
        if answer.status_code == 200 or "failed to load" in answer.text:
            break
        time.sleep(0.1)
    if answer.status_code != 200:
        raise AssertionError(answer.text)


def synthetic_people(root, people, photos: int, size: int, seed: int, first_identity: int = 0, prefix: str = "p"):
    """Identity folders ``root/<prefix><person>/<photo>.png`` of rendered synthetic faces, for each person number in
    ``people`` (identity ``first_identity + person``); returns ``root``."""
    from facelearn.data.synthetic import SyntheticFaces

    faces = SyntheticFaces(1, 1, size, seed=seed)
    for person in people:
        (root / f"{prefix}{person}").mkdir(parents=True)
        for photo in range(photos):
            image = faces.render(first_identity + person, photo)
            (root / f"{prefix}{person}" / f"{photo}.png").write_bytes(encode_image(image, ".png"))
    return root
