"""Issue 17: `tune --storage URL` with a password: the password is used to connect and nowhere else:
not on the terminal, not in study.json, not in any trial's env.json or report."""
from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import run_cli
from trainlab.redact import redact

PASSWORD = "s3cretPW"
RECIPE = {
    "name": "lin", "seed": 0,
    "data": {"source": "synthetic:linear", "n": 300, "batch_size": 64},
    "model": {"name": "linear"}, "loss": {"name": "mse"},
    "optim": {"name": "sgd", "lr": 0.05}, "train": {"epochs": 1, "device": "cpu", "threads": 1},
    "output": {"plots": False},
    "search": {"optim.lr": {"loguniform": [0.005, 0.2]}},
}


def files_holding(folder, secret: str) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


@pytest.mark.parametrize("url", [f"postgresql://bob:{PASSWORD}@127.0.0.1:1/db",
                                 f"mysql+pymysql://bob:{PASSWORD}@127.0.0.1:1/db"])
def test_unreachable_storage_exits_2_in_one_line_without_the_password(url, tmp_path):
    recipe = tmp_path / "lin.yaml"
    recipe.write_text(yaml.safe_dump({**RECIPE, "output": {"root": str(tmp_path / "runs"), "plots": False}}))
    # no driver installed (psycopg2, pymysql) or nothing listening on port 1: either way one line
    proc = run_cli("tune", recipe, "--trials", 1, "--storage", url, "--run-dir", tmp_path / "study", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert PASSWORD not in proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"trainlab: error: --storage {redact(url)}: "), proc.stderr
    assert "bob:***@127.0.0.1:1/db" in lines[0]
    assert not (tmp_path / "study").exists() and files_holding(tmp_path, PASSWORD) == []  # nothing written


def test_sqlite_storage_with_a_password_stores_only_the_redacted_url(tmp_path):
    folder = tmp_path / "study"
    folder.mkdir()
    # SQLite ignores a password query argument (SQLAlchemy warns); the URL carries one all the same
    url = f"sqlite:///{folder / 'study.db'}?password={PASSWORD}"
    recipe = tmp_path / "lin.yaml"
    recipe.write_text(yaml.safe_dump({**RECIPE, "output": {"root": str(tmp_path / "runs"), "plots": False}}))
    proc = run_cli("tune", recipe, "--trials", 2, "--storage", url, "--run-dir", folder, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert PASSWORD not in proc.stdout + proc.stderr
    shown = redact(url)
    assert shown.endswith("study.db?password=***") and f"storage {shown}" in proc.stdout
    assert json.loads((folder / "study.json").read_text())["storage"] == shown
    envs = sorted(folder.glob("trials/*/env.json"))
    assert len(envs) == 2
    for env in envs:
        assert shown in json.loads(env.read_text())["argv"]
    assert (folder / "trials" / "0000" / "report.html").is_file()
    assert files_holding(folder, PASSWORD) == []  # study.db, reports, trials/*: every file
