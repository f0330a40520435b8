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
        ("resnet18", {"in_channels": 1}, (2, 1, 28, 28)),
        ("wide-resnet", {"depth": 10, "width": 1}, (2, 3, 32, 32)),
        ("wide-resnet", {"depth": 10, "width": 1, "in_channels": 1}, (2, 1, 28, 28)),
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


@pytest.mark.parametrize("name", ["resnet18", "wide-resnet"])
def test_residual_networks_normalize_with_their_datasets_statistics(name):
    kwargs = {"depth": 10, "width": 1} if name == "wide-resnet" else {}
    mnist = build_model(name, in_channels=1, **kwargs)
    cifar = build_model(name, **kwargs)
    torch.testing.assert_close(mnist.normalize.mean.flatten(), torch.tensor([0.1307]))
    torch.testing.assert_close(mnist.normalize.std.flatten(), torch.tensor([0.3081]))
    torch.testing.assert_close(
        cifar.normalize.mean.flatten(), torch.tensor([0.4914, 0.4822, 0.4465])
    )
    assert mnist.conv1.in_channels == 1 and cifar.conv1.in_channels == 3
    custom = build_model(name, in_channels=2, mean=(0.5, 0.5), std=(0.25, 0.5), **kwargs)
    torch.testing.assert_close(custom.normalize.std.flatten(), torch.tensor([0.25, 0.5]))
    with pytest.raises(ValueError, match="pass mean and std"):
        build_model(name, in_channels=2, **kwargs)
    with pytest.raises(ValueError, match=r"one value per input channel \(1\)"):
        build_model(name, in_channels=1, mean=(0.5, 0.5, 0.5), std=(1.0, 1.0, 1.0), **kwargs)
