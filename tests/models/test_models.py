"""Backbones: insightface arcface_torch key names and shapes, stages, channels_last."""

from __future__ import annotations

import pytest
import torch
from conftest import load_json

from facelearn.config import ConfigError, ModelConfig
from facelearn.models import MobileFaceNet, build_backbone, iresnet


@pytest.mark.parametrize(
    "reference,build",
    [
        ("iresnet18", lambda: iresnet(18)),
        ("iresnet50", lambda: iresnet(50)),
        ("iresnet100", lambda: iresnet(100)),
        ("mobilefacenet", lambda: MobileFaceNet()),
    ],
)
def test_state_dict_equals_arcface_torch(reference, build):
    expected = load_json("fixtures", "reference_keys", f"{reference}.json")
    model = build()
    assert [[k, list(v.shape)] for k, v in model.state_dict().items()] == expected["state_dict"]
    assert sum(p.numel() for p in model.parameters()) == expected["num_parameters"]
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == expected["num_trainable_parameters"]
    # a checkpoint with exactly these keys loads strictly
    state = {k: torch.zeros(shape) for k, shape in expected["state_dict"]}
    for key in expected["buffer_keys"]:
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
    model.load_state_dict(state, strict=True)


def test_stages_compose_to_forward_and_match_resolutions():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 112, 112)
    for model in (iresnet(18).eval(), MobileFaceNet().eval()):
        embedding, stages = model.forward_stages(x)
        assert [s.shape[-1] for s in stages] == [56, 28, 14, 7]
        torch.testing.assert_close(embedding, model(x))
        torch.testing.assert_close(model.forward_from(stages[1], 2), embedding)
        assert embedding.shape == (2, 512)


def test_channels_last_gives_the_same_embedding():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 112, 112)
    model = iresnet(18).eval()
    reference = model(x)
    model = model.to(memory_format=torch.channels_last)
    result = model(x.contiguous(memory_format=torch.channels_last))
    # an untrained iResNet's embeddings are ~1e5 in norm: compare directions
    assert torch.nn.functional.cosine_similarity(result, reference).min() > 0.99999


def test_smaller_input_sizes_and_bad_names():
    model = build_backbone(
        ModelConfig(name="mobilefacenet", options={"width": 1, "blocks": [1, 1, 1, 1]}, embedding_size=64), 64
    )
    assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 64)
    assert build_backbone(ModelConfig(name="iresnet18"), 64).eval()(torch.randn(1, 3, 64, 64)).shape == (1, 512)
    with pytest.raises(ConfigError, match="valid names: iresnet100"):
        build_backbone(ModelConfig(name="resnet50"))
    with pytest.raises(ValueError, match="multiple of 16"):
        build_backbone(ModelConfig(name="mobilefacenet"), 100)


class _Pickled:
    """A class a weights-only load refuses to build (torch.save pickles it by reference)."""

    def __reduce__(self):
        return (print, ("this pickle ran code",))


def test_a_checkpoint_with_pickled_code_is_refused_and_says_so(tmp_path, capsys):
    from facelearn.models.checkpoint import CheckpointError, load_checkpoint

    path = tmp_path / "model.pt"
    torch.save({"state": _Pickled()}, path)
    with pytest.raises(CheckpointError, match="pickled Python objects.*never runs pickled code"):
        load_checkpoint(path)
    assert "this pickle ran code" not in capsys.readouterr().out
