"""`trainlab` ends without Python's interpreter teardown (cli.run: flush, atexit, os._exit), and the
normal way where that could lose something (benchmarks/results-issue18-process.md has the seconds)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PROGRAM = """
import atexit, sys, threading, time
from pathlib import Path
out = Path(sys.argv[1])

class Teardown:  # its __del__ runs only in the interpreter's teardown
    def __del__(self):
        (out / "teardown").write_text("ran")
keep = Teardown()
atexit.register(lambda: (out / "atexit").write_text("ran"))
if sys.argv[2] == "thread":  # a non-daemon thread still working when main returns
    threading.Thread(target=lambda: (time.sleep(0.5), (out / "thread").write_text("done"))).start()
from trainlab.cli import run
sys.argv = ["trainlab", *sys.argv[3:]]
run()
"""


def program(tmp_path, mode, *argv, env=None):
    e = {**os.environ, "PYTHONPATH": str(REPO / "src"), **(env or {})}
    return subprocess.run([sys.executable, "-c", PROGRAM, str(tmp_path), mode, *argv], capture_output=True,
                          text=True, env=e, timeout=120, stdin=subprocess.DEVNULL)


def test_the_exit_status_output_and_atexit_handlers_survive_the_fast_exit(tmp_path):
    res = program(tmp_path, "plain", "train", str(tmp_path / "missing.yaml"))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].startswith("trainlab: error:")
    assert (tmp_path / "atexit").read_text() == "ran"
    assert not (tmp_path / "teardown").exists()  # the teardown was skipped: the fast exit was taken


def test_help_exits_0_with_its_text(tmp_path):
    res = program(tmp_path, "plain", "--help")
    assert res.returncode == 0 and res.stdout.startswith("usage: trainlab")


def test_a_running_non_daemon_thread_gets_the_normal_exit(tmp_path):
    res = program(tmp_path, "thread", "train", str(tmp_path / "missing.yaml"))
    assert res.returncode == 2
    assert (tmp_path / "thread").read_text() == "done"  # joined, not killed
    assert (tmp_path / "atexit").read_text() == "ran"


def test_trainlab_fast_exit_0_gives_the_normal_exit(tmp_path):
    res = program(tmp_path, "plain", "train", str(tmp_path / "missing.yaml"), env={"TRAINLAB_FAST_EXIT": "0"})
    assert res.returncode == 2
    assert (tmp_path / "teardown").read_text() == "ran"


def test_a_profiler_still_writes_its_output(tmp_path):
    out = tmp_path / "prof.out"
    res = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(out), "-m", "trainlab", "--help"],
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                         env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert res.returncode == 0, res.stderr
    assert out.stat().st_size > 0
