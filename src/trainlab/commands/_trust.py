"""`--trust-code`: the one flag of the commands that build a model from a run directory (evaluate,
report, summary RUN_DIR, train --resume). A run directory may come from someone else; when its model
is `custom`, building it runs the Python file or module the recipe names (trainlab.api.require_trust)."""
from __future__ import annotations

import argparse

HELP = ("run the run's own model code when its model is `custom` (a Python file or module named in its "
        "recipe); without it such a run is refused. Only for runs you trust. Also: TRAINLAB_TRUST_CODE=1")


def add_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trust-code", action="store_true", help=HELP)
