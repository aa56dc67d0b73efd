"""Issue 17: a URL's password is redacted wherever trainlab shows or stores it (redact.py), in
env.json's argv and in the CLI's error line."""
from __future__ import annotations

import json
import string
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trainlab.cli import report_error
from trainlab.errors import TrainlabError
from trainlab.redact import redact, redact_all
from trainlab.track.rundir import RunDir

CASES = [
    ("postgresql://bob:s3cretPW@127.0.0.1:1/db", "postgresql://bob:***@127.0.0.1:1/db"),
    ("postgresql+psycopg2://bob:p%40ss@db.example:5432/lab", "postgresql+psycopg2://bob:***@db.example:5432/lab"),
    ("mysql://:only-a-password@host/db", "mysql://:***@host/db"),
    ("--storage=postgresql://a:x@h/db and mysql://b:y@h/db", "--storage=postgresql://a:***@h/db and mysql://b:***@h/db"),
    ("sqlite:////tmp/s.db?timeout=5&password=s3cretPW", "sqlite:////tmp/s.db?timeout=5&password=***"),
    # nothing to hide: unchanged
    ("mysql://bob@host/db", "mysql://bob@host/db"),
    ("sqlite:////tmp/study.db", "sqlite:////tmp/study.db"),
    ("https://example.com:8080/path", "https://example.com:8080/path"),
    ("optim.lr=0.1", "optim.lr=0.1"),
]


@pytest.mark.parametrize("text,shown", CASES)
def test_redact_hides_url_passwords_and_nothing_else(text, shown):
    assert redact(text) == shown


@given(st.text(alphabet=string.ascii_letters + string.digits + "!#$%^&*()-_=+[]{};:',.<>?/|~", min_size=1))
def test_redact_hides_any_password(password):
    assert redact(f"postgresql://bob:{password}@127.0.0.1:1/db") == "postgresql://bob:***@127.0.0.1:1/db"


def test_redact_all_walks_lists_and_dicts():
    assert redact_all({"argv": ["tune", "--storage", "postgresql://u:pw@h/db"], "n": 3}) == {
        "argv": ["tune", "--storage", "postgresql://u:***@h/db"], "n": 3}


def test_env_json_stores_the_command_line_with_the_password_redacted(tmp_path, monkeypatch):
    url = "postgresql://bob:s3cretPW@127.0.0.1:1/db"
    monkeypatch.setattr(sys, "argv", ["trainlab", "tune", "r.yaml", "--storage", url])
    rd = RunDir.create(tmp_path, "run", tmp_path / "run")
    rd.write_env(device="cpu", seed=0, threads=1)
    text = (rd.path / "env.json").read_text()
    assert "s3cretPW" not in text
    assert json.loads(text)["argv"][-1] == redact(url) == "postgresql://bob:***@127.0.0.1:1/db"


def test_cli_error_line_redacts_a_password(capsys):
    assert report_error(TrainlabError("--storage mysql://bob:s3cretPW@h/db: cannot open"), debug=False) == 2
    assert capsys.readouterr().err == "trainlab: error: --storage mysql://bob:***@h/db: cannot open\n"
