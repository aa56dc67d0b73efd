"""Compression of a trained run (`trainlab compress`): pruning, quantization and distillation, each
making a new run directory linked to its parent (child.py) that every other command takes like
any run, and a side-by-side comparison of the parent and its children.
"""

# method name -> "module:function" making a child run: fn(parent LoadedRun, options dict, run_dir,
# progress) -> api.Run. Imported when used (`trainlab --help` imports no torch). A method written
# elsewhere joins with one line here.
METHODS: dict[str, str] = {
    "prune": "trainlab.compress.prune:prune_run",
    "quantize": "trainlab.compress.quantize:method",
    "distill": "trainlab.compress.distill:method",
}
ALL_METHODS = ("prune", "quantize", "distill")


def method(name: str):
    """The function of compression method `name`; RecipeError for one not available yet."""
    import importlib

    from ..errors import RecipeError

    if name not in METHODS:
        have = ", ".join(METHODS)
        raise RecipeError(f"--method {name}: not available yet (available: {have})")
    module, fn = METHODS[name].split(":")
    return getattr(importlib.import_module(module), fn)
