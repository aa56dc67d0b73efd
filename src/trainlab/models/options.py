"""Typed ranges for model options: the registry checks a recipe's model options against the
factory's signature when the recipe is loaded, so `model.widths: [-1]` or `model.dropout: 2` is
an error naming the key before any data is read."""
from __future__ import annotations

from typing import Annotated

from pydantic import Field

Size = Annotated[int, Field(ge=1)]                    # a width, channel count, depth or number of layers
Dropout = Annotated[float, Field(ge=0.0, lt=1.0)]     # a probability of dropping; 1 would drop everything
Ratio = Annotated[float, Field(gt=0.0)]               # e.g. a transformer's MLP width over its dim
NgramOrder = Annotated[int, Field(ge=1, le=3)]     # longest token n-gram a bag-of-n-grams model hashes
