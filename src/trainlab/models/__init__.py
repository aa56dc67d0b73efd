"""Models: each factory builds an nn.Module from its options and the data's info."""
from __future__ import annotations

from ..errors import RecipeError
from ..registry import Registry
from . import convnet, custom, embedding_bag, gpt, mlp, resnet, rnn, transformer

MODELS = Registry("model", "models", context=("info",))
MODELS.add("linear", mlp.linear, "linear / logistic / softmax regression (one linear layer)")
MODELS.add("mlp", mlp.mlp, "multi-layer perceptron: widths, activation, dropout, batch/layer norm")
MODELS.add("lenet5", convnet.lenet5, "LeNet-5 (LeCun et al. 1998) for 28×28 or 32×32 images", aliases=("lenet",))
MODELS.add("convnet", convnet.convnet, "VGG-style conv net with batch norm and stride-2 downsampling")
MODELS.add("resnet", resnet.resnet, "ResNet: CIFAR-style depth 6n+2 (20, 32, 56, ...) or ResNet-18/34, with width")
MODELS.add("rnn", rnn.rnn, "RNN / LSTM / GRU sequence classifier over token embeddings, uni- or bidirectional",
           aliases=("lstm",))
MODELS.add("transformer", transformer.transformer,
           "transformer encoder classifier: token + position embeddings, pre-norm blocks, cls or mean pooling")
MODELS.add("embedding_bag", embedding_bag.embedding_bag,
           "fastText-style text classifier: pooled word + hashed n-gram embeddings, linear head",
           aliases=("fasttext",))
MODELS.add("gpt", gpt.gpt, "small causal transformer decoder for language modelling, weight-tied head")
MODELS.add("custom", custom.custom, "your own nn.Module: import 'package.module:Name' or 'file.py:Name', args")

__all__ = ["MODELS", "build_model", "user_code"]


# models that read token ids (an embedding first); the others multiply float inputs
TOKEN_MODELS = {"rnn", "transformer", "gpt", "embedding_bag", "custom"}


def build_model(cfg, info):
    """Build the recipe's model for data described by `info`."""
    name = MODELS.get(cfg.name, "model.name").name
    if getattr(info, "kind", None) == "tokens" and name not in TOKEN_MODELS:
        raise RecipeError(f"model.name: {name} multiplies float inputs, but this data is token ids; "
                          f"use one of {', '.join(sorted(TOKEN_MODELS - {'custom'}))}")
    features = (getattr(info, "extra", None) or {}).get("features")
    if features in ("bow", "tfidf") and name in TOKEN_MODELS - {"custom"}:
        raise RecipeError(f"model.name: {name} reads token sequences, but data.features: {features} makes one "
                          "vector per text; use linear or mlp, or data.features: tokens")
    return MODELS.build(cfg.name, cfg.options(), "model", info=info)


def user_code(cfg) -> str | None:
    """What building this model config would run that is not trainlab's: for `custom`, the Python
    file (resolved) or the module its `import` names; None for a registry model."""
    if MODELS.get(cfg.name, "model.name").name != "custom":
        return None
    target = str(cfg.options().get("import", ""))
    module = target.rpartition(":")[0] or target
    if custom.is_file_spec(module):
        return f"the Python file {custom.file_path(module)}"
    return f"the module {module}"
