"""MagFace, Circle Loss, CurricularFace, AdaFace, Sub-center ArcFace, AdaCos and the batch-hard
triplet loss: against the references' numbers in ../shared/fixtures and against their formulas."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
import torch
from conftest import load_json
from helpers import DTYPES, assert_matches, run_head, tiny_config

from facelearn.data.identity_sampler import IdentityBatchSampler
from facelearn.heads import (
    AdaCosHead,
    AdaFaceHead,
    BatchHardTripletLoss,
    CircleHead,
    CirclePairLoss,
    CurricularFaceHead,
    MagFaceHead,
    SubCenterArcFaceHead,
    find_outliers,
)
from facelearn.heads.magface import lambda_g_bound
from facelearn.train.build import build_trainer

BOTH = pytest.mark.parametrize("dtype", ["float64", "float32"])


@pytest.fixture(scope="module")
def fixture():
    return load_json("fixtures", "margin_heads.json")


@BOTH
@pytest.mark.parametrize(
    "reference, fallback, lambda_g",
    [
        ("magface_official_MagLinear_MagLoss", "easy_margin", 35.0),
        ("magface_official_MagLinear_MagLoss_hard_margin", "thmm", 35.0),
        ("facexzoo_MagFace", "cos", 20.0),
    ],
)
def test_magface_matches_references(fixture, reference, fallback, lambda_g, dtype):
    record = fixture["heads"][reference]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FaceX-Zoo's λ_g = 20 is below the bound (tested below)
        head = MagFaceHead(8, 5, lambda_g=lambda_g, fallback=fallback)
    assert_matches(head, record, fixture, dtype)
    x = torch.tensor(fixture["inputs"]["x"], dtype=DTYPES[dtype])
    a = head.magnitude(x)
    np.testing.assert_allclose(a.numpy(), record[dtype]["x_norm_clamped"], rtol=1e-6)
    np.testing.assert_allclose(head.margin(a).numpy(), record[dtype]["per_sample_margin"], rtol=1e-6)
    g = head.regulariser(a).mean().item()
    assert g == pytest.approx(record[dtype]["loss_g_mean_unweighted"], rel=1e-6)


def test_magface_margin_regulariser_and_bound_follow_the_paper():
    head = MagFaceHead(8, 5)
    raw = torch.tensor([5.0, 10.0, 35.0, 60.0, 110.0, 150.0], dtype=torch.float64)
    a = head.magnitude(raw.view(-1, 1))
    np.testing.assert_allclose(head.margin(a).numpy(), [0.45, 0.45, 0.5375, 0.625, 0.8, 0.8], atol=1e-6)
    np.testing.assert_allclose(
        head.regulariser(a).numpy(), [0.100826, 0.100826, 0.031464, 0.021625, 0.018182, 0.018182], atol=1e-6
    )
    assert lambda_g_bound(64, 10, 110, 0.45, 0.8) == pytest.approx(22.5867, abs=1e-4)
    with pytest.warns(UserWarning, match="below 22.59"):
        MagFaceHead(8, 5, lambda_g=20.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MagFaceHead(8, 5, lambda_g=35.0)
    assert MagFaceHead.quality(torch.tensor([[3.0, 4.0]])).item() == pytest.approx(5.0)


@BOTH
def test_circle_class_level_matches_facexzoo(fixture, dtype):
    head = CircleHead(8, 5, margin=0.25, gamma=256.0)
    assert_matches(head, fixture["heads"]["facexzoo_CircleLoss_classlevel"], fixture, dtype, atol=1e-4)


def test_circle_class_level_formula():
    head = CircleHead(4, 4, margin=0.25, gamma=32.0)
    cos = torch.tensor([[0.7, 0.2, -0.1, 0.4]], dtype=torch.float64)
    logits = head.margin_logits(cos, torch.tensor([0]), torch.zeros(1, 4, dtype=torch.float64))
    np.testing.assert_allclose(logits.numpy(), [[-0.88, -0.72, -1.68, 3.12]], atol=1e-12)
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0])).item()
    assert loss == pytest.approx(4.04692079, abs=1e-8)


@BOTH
def test_circle_pairwise_matches_pytorch_metric_learning(fixture, dtype):
    record = fixture["heads"]["pml_CircleLoss_pairbased"]
    x = torch.tensor(fixture["inputs"]["x"], dtype=DTYPES[dtype], requires_grad=True)
    out = CirclePairLoss(8, margin=0.4, gamma=80.0)(x, torch.tensor(fixture["inputs"]["y"]))
    out.loss.backward()
    assert out.loss.item() == pytest.approx(record[dtype]["loss"], rel=1e-5)
    np.testing.assert_allclose(x.grad.numpy(), record[dtype]["grad_x"], rtol=1e-5, atol=1e-5)


def test_circle_pairwise_stays_finite_at_gamma_256_and_without_positives():
    x = torch.randn(6, 8, requires_grad=True)
    out = CirclePairLoss(8)(x * 100, torch.tensor([0, 0, 1, 2, 3, 4]))  # only anchors 0 and 1 have a positive
    out.loss.backward()
    assert torch.isfinite(out.loss) and torch.isfinite(x.grad).all()
    assert x.grad[2:].abs().sum() > 0  # the others still serve as negatives


@BOTH
@pytest.mark.parametrize("reference", ["curricularface_official_t0_0", "curricularface_official_t0_0.5"])
def test_curricularface_matches_the_official_code(fixture, reference, dtype):
    record = fixture["heads"][reference]
    head = CurricularFaceHead(8, 5).to(DTYPES[dtype])
    head.t.fill_(record[dtype]["t_before"])
    assert_matches(head, record, fixture, dtype)
    assert head.t.item() == pytest.approx(record[dtype]["t_after"], rel=1e-6, abs=1e-9)
    head.eval()  # no update outside training
    before = head.t.item()
    head(torch.tensor(fixture["inputs"]["x"], dtype=DTYPES[dtype]), torch.tensor(fixture["inputs"]["y"]))
    assert head.t.item() == before


@BOTH
@pytest.mark.parametrize(
    "reference, t_alpha", [("adaface_official_t_alpha_0.01", 0.01), ("adaface_official_t_alpha_1", 1.0)]
)
def test_adaface_matches_the_official_code(fixture, reference, t_alpha, dtype):
    record = fixture["heads"][reference][dtype]
    head = AdaFaceHead(8, 5, t_alpha=t_alpha).to(DTYPES[dtype])
    head.batch_mean.fill_(record["batch_mean_before"])
    head.batch_std.fill_(record["batch_std_before"])
    assert_matches(head, fixture["heads"][reference], fixture, dtype)
    assert head.batch_mean.item() == pytest.approx(record["batch_mean_after"], rel=1e-6)
    assert head.batch_std.item() == pytest.approx(record["batch_std_after"], rel=1e-6)
    x = torch.tensor(fixture["inputs"]["x"], dtype=DTYPES[dtype])
    np.testing.assert_allclose(head.margin_scaler(x).numpy(), record["margin_scaler_per_sample"], rtol=1e-5, atol=1e-7)


@BOTH
def test_subcenter_arcface_matches_pytorch_metric_learning(fixture, dtype):
    record = fixture["heads"]["pml_SubCenterArcFaceLoss"]
    head = SubCenterArcFaceHead(8, 5, margin=math.radians(28.6), sub_centers=3)
    out, grad_x, grad_W = run_head(head, fixture, DTYPES[dtype], weight=fixture["inputs"]["W_sub"])
    np.testing.assert_allclose(out.logits.detach().numpy(), record[dtype]["logits"], rtol=1e-5, atol=1e-5)
    assert out.loss.item() == pytest.approx(record[dtype]["loss"], rel=1e-5)
    np.testing.assert_allclose(grad_x.numpy(), record[dtype]["grad_x"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad_W.numpy(), record[dtype]["grad_W"], rtol=1e-5, atol=1e-5)


def test_subcenter_outliers_are_far_from_the_dominant_sub_center():
    head = SubCenterArcFaceHead(2, 1, sub_centers=2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))  # class 0: sub-centres at 0° and 90°
    angles = torch.deg2rad(torch.tensor([5.0, -10.0, 20.0, 80.0]))  # three near 0°, one near the other centre
    x = torch.stack([angles.cos(), angles.sin()], dim=1)
    outliers = find_outliers(head, x, torch.zeros(4, dtype=torch.long), threshold_degrees=75)
    assert outliers.tolist() == [False, False, False, True]


def test_adacos_scale_follows_its_formula():
    torch.manual_seed(0)
    head = AdaCosHead(8, 10)
    assert head.adaptive_scale.item() == pytest.approx(math.sqrt(2) * math.log(9), rel=1e-6)
    x, y = torch.randn(16, 8, dtype=torch.float64), torch.randint(0, 10, (16,))
    head = head.to(torch.float64)
    cos = head.cosine(x).detach().numpy()
    s_old = head.adaptive_scale.item()
    target = cos[np.arange(16), y.numpy()]
    others = np.exp(s_old * cos)
    others[np.arange(16), y.numpy()] = 0
    theta_median = np.sort(np.arccos(target))[(16 - 1) // 2]  # torch.median: the lower middle value
    expected = np.log(others.sum(1).mean()) / np.cos(min(math.pi / 4, theta_median))
    out = head(x, y)
    assert head.adaptive_scale.item() == pytest.approx(expected, rel=1e-9)
    np.testing.assert_allclose(out.logits.detach().numpy(), expected * cos, rtol=1e-9)
    fixed = AdaCosHead(8, 10, dynamic=False).to(torch.float64)
    fixed(x, y)
    assert fixed.adaptive_scale.item() == pytest.approx(math.sqrt(2) * math.log(9))


def test_batch_hard_triplet_is_the_formula():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(8, 5)), np.array([0, 0, 1, 1, 2, 2, 2, 3])
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    d = ((u[:, None] - u[None]) ** 2).sum(-1)
    terms = []
    for a in range(8):
        positives = [d[a, p] for p in range(8) if y[p] == y[a] and p != a]
        if positives:
            negatives = [d[a, n] for n in range(8) if y[n] != y[a]]
            terms.append(max(max(positives) - min(negatives) + 0.2, 0))
    loss = BatchHardTripletLoss(5)(torch.tensor(x), torch.tensor(y)).loss.item()
    assert loss == pytest.approx(np.mean(terms), rel=1e-9)
    with pytest.raises(ValueError, match="data.sampler=identity"):
        BatchHardTripletLoss(5)(torch.tensor(x[:3]), torch.tensor([0, 1, 2]))


@pytest.mark.parametrize(
    "head", [MagFaceHead, CircleHead, CurricularFaceHead, AdaFaceHead, SubCenterArcFaceHead, AdaCosHead]
)
def test_every_new_head_is_finite_under_bf16_autocast(head):
    x = (torch.randn(8, 16) * 30).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = head(16, 4)(x.bfloat16(), torch.tensor([0, 1, 2, 3, 0, 1, 2, 3]))
    out.loss.backward()
    assert out.loss.dtype == torch.float32 and torch.isfinite(out.loss) and torch.isfinite(x.grad).all()


@pytest.mark.parametrize(
    "name, extra",
    [
        ("magface", []),
        ("circle", []),
        ("curricularface", []),
        ("adaface", []),
        ("subcenter_arcface", []),
        ("adacos", []),
        ("triplet", ["data.sampler=identity", "data.samples_per_identity=4"]),
        ("circle_pair", ["data.sampler=identity", "data.samples_per_identity=2"]),
    ],
)
def test_every_head_trains_through_the_engine(tmp_path, name, extra):
    torch.set_num_threads(1)
    summary = build_trainer(tiny_config(tmp_path, f"head.name={name}", "train.steps=2", *extra)).fit()
    assert summary["step"] == 2


def test_identity_sampler_gives_p_identities_times_k_and_replays():
    labels = [0] * 5 + [1] * 3 + [2] * 1 + [3] * 6 + [4] * 2
    sampler = IdentityBatchSampler(labels, batch_size=6, samples_per_identity=3, seed=1)
    batches = list(itertools.islice(sampler, 4))
    for batch in batches:
        identities = [labels[i] for _, i in batch]
        assert len(batch) == 6 and len(set(identities)) == 2 and 2 not in identities  # a single image gives no pair
        assert identities[:3] == [identities[0]] * 3 and identities[3:] == [identities[3]] * 3
    assert next(iter(IdentityBatchSampler(labels, 6, 3, seed=1, start_batch=3))) == batches[3]
    ranks = [next(iter(IdentityBatchSampler(labels, 6, 3, seed=1, rank=r, world_size=2))) for r in (0, 1)]
    assert {labels[i] for _, i in ranks[0]}.isdisjoint({labels[i] for _, i in ranks[1]})
    with pytest.raises(ValueError, match="multiple of data.samples_per_identity"):
        IdentityBatchSampler(labels, 7, 3, seed=1)
    with pytest.raises(ValueError, match="fewer than the 6"):
        IdentityBatchSampler(labels, 18, 3, seed=1)


def test_head_options_and_sizes_are_checked_before_training(tmp_path):
    from facelearn.models import build_backbone
    from facelearn.train.tasks import ClassificationTask

    config = tiny_config(tmp_path)
    with pytest.raises(ValueError, match="32-d embeddings but the head expects 64-d"):
        ClassificationTask(build_backbone(config.model, 32), MagFaceHead(64, 6), config, None)
    with pytest.raises(ValueError, match="head.gamma is not an option of head 'magface'"):
        build_trainer(tiny_config(tmp_path, "head.name=magface", "head.gamma=3"))
    with pytest.raises(ValueError, match="has 2 classes"):
        build_trainer(tiny_config(tmp_path, "head.name=curricularface", "data.num_classes=2")).fit()


def test_clean_lists_outliers_that_data_exclude_leaves_out(tmp_path):
    from PIL import Image

    from facelearn.cli import main
    from facelearn.data.folder import ImageFolder

    rng = np.random.default_rng(0)
    for person in range(4):
        (tmp_path / "faces" / f"p{person}").mkdir(parents=True)
        for n in range(4):
            pixels = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "faces" / f"p{person}" / f"{n}.png")
    run = tmp_path / "run"
    overrides = ["data.kind=folder", f"data.root={tmp_path / 'faces'}", "head.name=subcenter_arcface", "train.steps=2"]
    build_trainer(tiny_config(run, *overrides)).fit()
    checkpoint = str(sorted(run.glob("step_*.pt"))[-1])
    output = tmp_path / "outliers.txt"
    args = ["clean", checkpoint, "--root", str(tmp_path / "faces"), "--output", str(output), "--threshold", "0"]
    assert main(args) == 0
    listed = output.read_text().split()
    assert len(listed) == 16  # at 0° every image is an outlier
    (tmp_path / "some.txt").write_text("p0/1.png\np3/0.png\n")
    assert len(ImageFolder(tmp_path / "faces", tmp_path / "some.txt")) == 14
    assert main([*args[:-1], "180"]) == 0
    assert output.read_text() == ""  # and at 180° none
    arcface = tmp_path / "arcface"
    build_trainer(tiny_config(arcface, *overrides[:2], "train.steps=1")).fit()
    assert main(["clean", str(sorted(arcface.glob("step_*.pt"))[-1]), "--root", str(tmp_path / "faces")]) == 2
