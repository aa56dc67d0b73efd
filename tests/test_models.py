"""Every registered model: built from a recipe on tiny data, forward, backward, a few training steps
with decreasing loss. The cases are keyed by registry name, so a new model cannot skip them."""
from __future__ import annotations

import math
import textwrap

import pytest
import torch

from trainlab.data import DataBundle, DataInfo, Split
from trainlab.models import MODELS
from trainlab.recipe import load_recipe
from trainlab.train import Trainer

CUSTOM_MODULE = textwrap.dedent('''
    import torch
    from torch import nn

    class TinyNet(nn.Module):
        def __init__(self, input_shape, num_classes, hidden=16):
            super().__init__()
            n = 1
            for d in input_shape:
                n *= d
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(n, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

        def forward(self, x):
            return self.net(x)
''')


def image_bundle(n=16, shape=(3, 32, 32), classes=4) -> DataBundle:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, *shape, generator=g), torch.randint(0, classes, (n,), generator=g)
    info = DataInfo("classification", shape, classes, classes, "image")
    return DataBundle(Split(x, y), None, None, info)


def vector_bundle(n=16, features=12, classes=3) -> DataBundle:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, features, generator=g), torch.randint(0, classes, (n,), generator=g)
    return DataBundle(Split(x, y), None, None, DataInfo("classification", (features,), classes, classes, "vector"))


def token_bundle(n=16, length=12, vocab=30, classes=3) -> DataBundle:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(2, vocab, (n, length), generator=g)
    lengths = torch.randint(3, length + 1, (n,), generator=g)
    x[torch.arange(length)[None, :] >= lengths[:, None]] = 0  # right padding
    y = torch.randint(0, classes, (n,), generator=g)
    info = DataInfo("classification", (length,), classes, classes, "tokens",
                    extra={"vocab_size": vocab, "pad_index": 0, "seq_len": length})
    return DataBundle(Split(x, y), None, None, info)


def lm_bundle(n=8, length=16, vocab=20) -> DataBundle:
    g = torch.Generator().manual_seed(0)
    stream = torch.randint(2, vocab, (n * length + 1,), generator=g)
    w = stream.unfold(0, length + 1, length)
    info = DataInfo("classification", (length,), vocab, vocab, "tokens",
                    extra={"vocab_size": vocab, "pad_index": 0, "seq_len": length, "sequence_targets": True})
    return DataBundle(Split(w[:, :-1], w[:, 1:]), None, None, info)


# registry name -> (model options, data)
CASES = {
    "linear": ({}, vector_bundle),
    "mlp": ({"widths": [32, 16], "norm": "layer"}, vector_bundle),
    "lenet5": ({}, image_bundle),
    "convnet": ({"widths": [8, 16]}, image_bundle),
    "resnet": ({"depth": 20}, image_bundle),
    "rnn": ({"cell": "lstm", "embed_dim": 16, "hidden": 16, "bidirectional": True}, token_bundle),
    "transformer": ({"dim": 32, "depth": 2, "heads": 4, "dropout": 0.0}, token_bundle),
    "gpt": ({"dim": 32, "depth": 2, "heads": 4, "dropout": 0.0}, lm_bundle),
    "embedding_bag": ({"dim": 16, "ngrams": 2, "buckets": 64, "hidden": 8}, token_bundle),
    "custom": ({"import": "{module}:TinyNet", "args": {"hidden": 8}}, vector_bundle),
}


def test_every_registered_model_has_a_case():
    assert set(CASES) == set(MODELS.names())


def build(name: str, options: dict, bundle: DataBundle, tmp_path, **optim) -> Trainer:
    recipe = load_recipe({"model": {"name": name, **options}, "optim": {"name": "adamw", "lr": 1e-2, **optim},
                          "train": {"device": "cpu", "threads": 1}, "output": {"root": str(tmp_path)}})
    return Trainer(recipe, bundle=bundle, progress=False)


@pytest.mark.parametrize("name", sorted(CASES))
def test_model_builds_runs_and_learns(name, tmp_path):
    options, make_data = CASES[name]
    if name == "custom":
        module = tmp_path / "tiny_custom_net.py"
        module.write_text(CUSTOM_MODULE)
        options = {**options, "import": options["import"].format(module=module)}
    bundle = make_data()
    torch.manual_seed(0)
    trainer = build(name, options, bundle, tmp_path)
    model, x, y = trainer.model, bundle.train.x, bundle.train.y
    out = model(x)
    expected = (len(x), *y.shape[1:], bundle.info.output_dim)
    assert tuple(out.shape) == expected
    losses = []
    for _ in range(10):  # fit one fixed batch: the loss must come down
        trainer.optimizer.zero_grad()
        loss = trainer.loss_fn(model(x), y)
        loss.backward()
        if not losses:
            grads = [p.grad for p in model.parameters() if p.requires_grad]
            assert all(g is not None and torch.isfinite(g).all() for g in grads)
            assert any(g.abs().sum() > 0 for g in grads)
        trainer.optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0], losses


@pytest.mark.parametrize("depth,params", [(20, 269_722), (32, 464_154), (56, 853_018)])
def test_cifar_resnet_parameter_counts_match_the_paper(depth, params):
    # He et al. 2016, Table 6: 0.27M, 0.46M, 0.85M (option A shortcuts, 10 classes)
    info = image_bundle().info
    info.output_dim = info.num_classes = 10
    model = MODELS.build("resnet", {"depth": depth}, "model", info=info)
    assert sum(p.numel() for p in model.parameters()) == params


def test_resnet20_runs_on_cifar_shaped_tensors_and_resnet18_matches_torchvision_count():
    info = DataInfo("classification", (3, 32, 32), 10, 10, "image")
    model = MODELS.build("resnet", {"depth": 20}, "model", info=info).eval()
    assert model(torch.randn(4, 3, 32, 32)).shape == (4, 10)
    big = DataInfo("classification", (3, 224, 224), 1000, 1000, "image")
    r18 = MODELS.build("resnet", {"depth": 18}, "model", info=big)
    assert sum(p.numel() for p in r18.parameters()) == 11_689_512  # torchvision's resnet18
    assert r18.stem[0].kernel_size == (7, 7)
    wide = MODELS.build("resnet", {"depth": 20, "width": 32}, "model", info=info)
    assert wide.stem[0].out_channels == 32 and wide.fc.in_features == 128


def test_resnet_rejects_a_depth_that_is_not_one():
    from trainlab.errors import RecipeError

    with pytest.raises(RecipeError, match=r"model\.depth: 21"):
        MODELS.build("resnet", {"depth": 21}, "model", info=image_bundle().info)


def test_lenet5_has_lecuns_parameter_count_on_28_and_32_pixel_inputs():
    for size in (28, 32):
        info = DataInfo("classification", (1, size, size), 10, 10, "image")
        model = MODELS.build("lenet5", {}, "model", info=info)
        assert sum(p.numel() for p in model.parameters()) == 61_706
        assert model(torch.randn(2, 1, size, size)).shape == (2, 10)


def test_residual_blocks_start_as_identity_and_lstm_forget_bias_is_one():
    model = MODELS.build("resnet", {"depth": 8}, "model", info=image_bundle().info)
    assert all(float(b.bn2.weight.detach().abs().sum()) == 0 for b in model.stages.modules() if hasattr(b, "bn2"))
    rnn = MODELS.build("rnn", {"hidden": 8}, "model", info=token_bundle().info)
    assert torch.equal(rnn.rnn.bias_ih_l0[8:16], torch.ones(8))
    assert torch.equal(rnn.rnn.bias_ih_l0[:8], torch.zeros(8))


@pytest.mark.parametrize("scheme", ["kaiming", "xavier", "orthogonal", "normal"])
def test_init_schemes_reinitialize_every_weight_matrix(scheme):
    info = vector_bundle(features=64).info
    model = MODELS.build("mlp", {"widths": [64, 64], "init": scheme}, "model", info=info)
    w = model[3].weight.detach()  # the 64×64 hidden layer
    if scheme == "orthogonal":
        assert torch.allclose(w @ w.T, torch.eye(64), atol=1e-4)
    elif scheme == "normal":
        assert abs(float(w.std()) - 0.02) < 0.003
    elif scheme == "kaiming":
        assert abs(float(w.std()) - (2 / 64) ** 0.5) < 0.02
    else:
        assert abs(float(w.std()) - (2 / 128) ** 0.5) < 0.02
    assert all(float(m.bias.detach().abs().sum()) == 0 for m in model if isinstance(m, torch.nn.Linear))


@pytest.mark.parametrize("name", ["linear", "mlp", "lenet5", "convnet", "resnet", "rnn", "transformer", "gpt"])
def test_dropout_option_reaches_the_model(name):
    make = CASES[name][1]
    model = MODELS.build(name, {**CASES[name][0], "dropout": 0.3}, "model", info=make().info)
    ps = {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)}
    assert ps == {0.3}


@pytest.mark.parametrize("name,options", [("rnn", {"bidirectional": True, "pool": "last"}),
                                          ("rnn", {"cell": "gru", "pool": "mean", "layers": 2}),
                                          ("rnn", {"cell": "rnn", "pool": "max"}),
                                          ("transformer", {"pool": "cls"}), ("transformer", {"pool": "mean"})])
def test_padding_does_not_change_a_sequence_models_output(name, options):
    bundle = token_bundle(n=6, length=12)
    x = bundle.train.x.clone()
    x[:, 8:] = 0  # every row ends in at least 4 pads
    torch.manual_seed(0)
    model = MODELS.build(name, {"embed_dim" if name == "rnn" else "dim": 16, **options}, "model",
                         info=bundle.info).eval()
    with torch.no_grad():
        assert torch.allclose(model(x), model(x[:, :9]), atol=1e-5)


def test_gpt_is_causal_and_its_head_is_tied_to_the_embedding():
    bundle = lm_bundle()
    torch.manual_seed(0)
    model = MODELS.build("gpt", {"dim": 32, "depth": 2, "heads": 2}, "model", info=bundle.info).eval()
    assert model.head.weight is model.tok.weight
    x = bundle.train.x[:2].clone()
    with torch.no_grad():
        a = model(x)
        x[:, 10:] = 3  # change only the future of position 9
        b = model(x)
    assert torch.allclose(a[:, :10], b[:, :10], atol=1e-6)
    assert not torch.allclose(a[:, 10:], b[:, 10:])
    out = model.generate(x[:, :4], 5, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 9) and torch.equal(out[:, :4], x[:, :4])


def test_models_that_need_images_or_tokens_say_so():
    from trainlab.errors import RecipeError

    with pytest.raises(RecipeError, match="lenet5 needs image inputs"):
        MODELS.build("lenet5", {}, "model", info=vector_bundle().info)
    with pytest.raises(RecipeError, match="gpt needs token data"):
        MODELS.build("gpt", {}, "model", info=vector_bundle().info)
    with pytest.raises(RecipeError, match="model.heads"):
        MODELS.build("transformer", {"dim": 30, "heads": 4}, "model", info=token_bundle().info)


def test_sequence_models_also_read_images_row_by_row():
    bundle = image_bundle(n=4, shape=(1, 28, 28))
    for name in ("rnn", "transformer"):
        model = MODELS.build(name, {}, "model", info=bundle.info)
        assert model(bundle.train.x).shape == (4, 4)


def test_language_model_trains_and_reports_per_token_metrics(tmp_path):
    bundle = lm_bundle(n=12)
    bundle.val = Split(bundle.train.x[:4], bundle.train.y[:4])
    recipe = load_recipe({"model": {"name": "gpt", "dim": 32, "depth": 1, "heads": 2, "dropout": 0.0},
                          "optim": {"lr": 1e-2}, "data": {"batch_size": 4},
                          "train": {"epochs": 3, "device": "cpu", "threads": 1}})
    trainer = Trainer(recipe, bundle=bundle, progress=False)
    trainer.fit()
    first, last = trainer.history[0], trainer.history[-1]
    assert last["train.loss"] < first["train.loss"]
    assert 0.0 < last["train.accuracy"] <= 1.0  # counted per token, not per window
    assert last["val.perplexity"] == pytest.approx(math.exp(last["val.loss"]), rel=1e-6)
    m = trainer.evaluate_split("val")
    assert m["samples"] == 4 and 0.0 <= m["accuracy"] <= 1.0
