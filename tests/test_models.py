import pytest
import torch

import reprolab
from reprolab import data


def test_registry_lists_offline_and_online():
    assert reprolab.list_models("offline") == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2",
                                               "mobilenet_v2"]
    assert {"resnet50", "vgg16", "googlenet", "inception_v3"} <= set(reprolab.list_models("torchvision"))


def test_loaded_model_is_frozen_and_describes_itself(lite0):
    assert not lite0.training
    assert not any(p.requires_grad for p in lite0.parameters())
    lite0.train()  # a frozen model refuses to leave eval mode
    assert not lite0.training and not any(m.training for m in lite0.modules())
    assert lite0.input_size == 224 and lite0.num_classes == 1000
    assert lite0.class_names[1] == "goldfish"
    convs = lite0.conv_layers()
    assert len(convs) > 30 and convs[0] == "_conv_stem"


def test_gradient_reaches_input_but_never_weights(lite0):
    x = torch.rand(1, 3, 224, 224, requires_grad=True)
    lite0(x)[0, 5].backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in lite0.parameters())


def test_record_hooks_are_removed(lite0):
    layers = lite0.conv_layers()[:3]
    with lite0.record(layers) as acts:
        lite0(torch.rand(1, 3, 224, 224))
    assert list(acts) == layers and acts[layers[0]].shape == (1, 32, 112, 112)
    assert all(not m._forward_hooks for m in lite0.modules())
    with pytest.raises(KeyError, match="conv_layers"):
        with lite0.record(["no_such_layer"]):
            pass


@pytest.mark.parametrize("bad, match", [
    (torch.rand(3, 224, 224), r"\(N, 3, H, W\)"),
    (torch.rand(1, 1, 224, 224), r"\(N, 3, H, W\)"),
    (torch.rand(1, 3, 100, 100), "multiples of 32"),
    (torch.rand(1, 3, 224, 224) * 255, r"\[0, 1\].*255"),
    (torch.full((1, 3, 224, 224), float("nan")), "NaN"),
])
def test_bad_inputs_get_clear_errors(lite0, bad, match):
    with pytest.raises(ValueError, match=match):
        lite0(bad)


def test_unknown_model_name():
    with pytest.raises(ValueError, match=r"unknown model 'resnet5'.*efficientnet_lite0.*wrap_model"):
        reprolab.load_model("resnet5")


def test_online_model_offline_says_how_to_get_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty weights cache
    with pytest.raises(RuntimeError, match=r"offline and no cached weights: resnet50 needs .*download.pytorch.org.*copy the file"):
        reprolab.load_model("resnet50", offline=True)


def test_wrap_any_module(tiny_model):
    assert tiny_model.num_classes == 10 and tiny_model.class_names[3] == "class_3"
    assert tiny_model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert tiny_model.conv_layers() == ["0"]
    assert reprolab.predict(tiny_model, torch.full((1, 3, 32, 32), 1 / 3)).item() == 3


@pytest.mark.slow
@pytest.mark.parametrize("name", reprolab.list_models("offline"))
def test_offline_top1_on_the_imagenet_sample(name, data_dir):
    """Each offline model must reach its floor on the 500 real photos.

    Measured: EfficientNet-Lite 88-90 %, mobilenet_v2 83.8 % (71.9 % on ImageNet's
    validation set: the sample photos are easier). A broken preprocessing costs more.
    """
    floor = 0.80 if name == "mobilenet_v2" else 0.85
    model = reprolab.load_model(name)
    x, y = data.load_images(data_dir / "imagenet-sample", model.input_size, crop=model.crop)
    top1 = reprolab.accuracy(reprolab.predict(model, x), y)
    print(f"\n{name}: top-1 {top1:.1%} on {len(y)} imagenet-sample photos")
    assert len(y) == 500
    assert top1 >= floor, f"{name} top-1 {top1:.1%} < {floor:.0%}: preprocessing broken?"


def test_compiled_model_keeps_values_layer_names_and_hooks():
    from helpers import make_tiny_model

    graphs = []

    def counting_backend(gm, example_inputs):  # dynamo without a C++ build; counts compiled calls
        def run(*args):
            graphs.append(1)
            return gm.forward(*args)
        return run

    eager, compiled = make_tiny_model(), make_tiny_model().compile(backend=counting_backend)
    x = torch.rand(4, 3, 32, 32, requires_grad=True)
    assert torch.allclose(compiled(x), eager(x)) and len(graphs) == 1
    assert compiled.conv_layers() == eager.conv_layers() == ["0"]
    assert [n for n, _ in compiled.named_modules()] == [n for n, _ in eager.named_modules()]
    with compiled.record(["0", "1"]) as acts:  # hooks need the eager network
        compiled(x).sum().backward()
    assert sorted(acts) == ["0", "1"] and x.grad is not None and len(graphs) == 1
    compiled(x)
    assert len(graphs) == 2  # compiled again once the recording is over
    with pytest.raises(ValueError, match="pixels in"):  # the input checks stay eager
        compiled(torch.full((1, 3, 32, 32), 2.0))


@pytest.mark.parametrize("name", ["efficientnet_lite0", "mobilenet_v2", "resnet18"])
def test_random_weights_keep_the_architecture_and_preprocessing(name):
    """The control for "what are the pretrained weights worth": same network, random weights, no download."""
    torch.manual_seed(0)
    model = reprolab.load_model(name, pretrained=False, offline=True)
    spec = reprolab.models.REGISTRY[name]
    assert model.name == f"{name} (random weights)" and model.input_size == spec.input_size
    assert not any(p.requires_grad for p in model.parameters())
    torch.manual_seed(0)
    again = reprolab.load_model(name, pretrained=False, offline=True)
    x = torch.rand(2, 3, spec.input_size, spec.input_size)
    assert torch.equal(model(x), again(x))  # the global seed makes the weights repeat
