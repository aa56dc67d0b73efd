"""Shared fixtures: run the CLI as a user would, and make tiny recipes."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
FMNIST = Path("/usr/share/datasets/fashion-mnist")


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600, env: dict | None = None):
    """Run `python -m trainlab ARGS` with this checkout's src/ first; returns CompletedProcess."""
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO / "src") + os.pathsep + e.get("PYTHONPATH", "")
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "trainlab", *map(str, args)], cwd=cwd, env=e,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture
def cli(tmp_path):
    def _run(*args, **kw):
        kw.setdefault("cwd", tmp_path)
        return run_cli(*args, **kw)
    return _run


@pytest.fixture
def write_recipe(tmp_path):
    def _write(recipe: dict, name: str = "recipe.yaml") -> Path:
        recipe = {"output": {"root": str(tmp_path / "runs")}, **recipe}
        p = tmp_path / name
        p.write_text(yaml.safe_dump(recipe))
        return p
    return _write


needs_fmnist = pytest.mark.skipif(not (FMNIST / "train-images-idx3-ubyte.gz").exists(),
                                  reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")


# --- the fuzzer's count (tests/test_fuzz.py): how many generated cases ran, by exit status ---------------

def pytest_configure(config):
    from collections import Counter

    config.fuzz_cases = Counter()
    # the decoded-data cache (trainlab.data.cache) of this session: never the user's ~/.cache,
    # and shared by the CLI processes the tests start; tests of the cache set their own
    if "TRAINLAB_CACHE" not in os.environ:
        import tempfile

        config.decoded_cache = tempfile.TemporaryDirectory(prefix="trainlab-test-cache-")
        os.environ["TRAINLAB_CACHE"] = config.decoded_cache.name


def pytest_unconfigure(config):
    if getattr(config, "decoded_cache", None) is not None:
        os.environ.pop("TRAINLAB_CACHE", None)
        config.decoded_cache.cleanup()


@pytest.fixture(scope="session")
def fuzz_cases(request):
    return request.config.fuzz_cases


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    cases = getattr(config, "fuzz_cases", None)
    if cases:
        by_status = ", ".join(f"exit {rc}: {n}" for rc, n in sorted(cases.items()))
        terminalreporter.write_line(f"fuzz: {sum(cases.values())} generated cases ran ({by_status})")
