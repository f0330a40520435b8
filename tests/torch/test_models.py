"""Architectures: shapes, in-model normalization, registry errors."""

import pytest
import torch

from krylovadv.torch.models import MODELS, Normalize, build_model


@pytest.mark.parametrize(
    ("name", "kwargs", "shape"),
    [
        ("madry-cnn", {}, (2, 1, 28, 28)),
        ("small-cnn", {}, (2, 1, 28, 28)),
        ("small-cnn", {"activation": "softplus"}, (2, 1, 28, 28)),
        ("resnet18", {}, (2, 3, 32, 32)),
        ("wide-resnet", {"depth": 10, "width": 1}, (2, 3, 32, 32)),
    ],
)
def test_models_map_unit_interval_images_to_logits(name, kwargs, shape):
    torch.manual_seed(0)
    model = build_model(name, **kwargs).eval()
    with torch.no_grad():
        logits = model(torch.rand(shape))
    assert logits.shape == (2, 10)
    assert torch.isfinite(logits).all()


def test_madry_cnn_has_the_papers_layer_sizes():
    model = build_model("madry-cnn")
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [c.out_channels for c in convs] == [32, 64]
    assert [lin.out_features for lin in linears] == [1024, 10]


def test_normalization_lives_inside_the_model():
    norm = Normalize((0.5, 0.25, 0.0), (0.5, 0.5, 1.0))
    x = torch.ones(1, 3, 2, 2)
    expected = torch.tensor([1.0, 1.5, 1.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    torch.testing.assert_close(norm(x), expected)
    assert norm(x.double()).dtype == torch.float64
    with pytest.raises(ValueError, match="std > 0"):
        Normalize((0.5,), (0.0,))


def test_unknown_names_list_the_choices():
    with pytest.raises(ValueError, match="madry-cnn"):
        build_model("vgg")
    with pytest.raises(ValueError, match="relu"):
        build_model("small-cnn", activation="tanh")
    with pytest.raises(ValueError, match="6k"):
        build_model("wide-resnet", depth=11)
    assert set(MODELS) == {"madry-cnn", "small-cnn", "resnet18", "wide-resnet"}
