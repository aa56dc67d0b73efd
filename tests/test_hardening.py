"""Issue 17, cases the fuzzer (tests/test_fuzz.py) found: each a clear line and exit 2 before training."""
from __future__ import annotations

import pytest
import yaml

from trainlab.cli import main


@pytest.mark.parametrize("source,loss,task", [("sklearn:iris", "mse", "classification"),
                                              ("sklearn:diabetes", "cross_entropy", "regression")])
def test_loss_for_the_other_task_is_refused_before_training(tmp_path, capsys, monkeypatch, source, loss, task):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.yaml").write_text(yaml.safe_dump({"data": {"source": source}, "loss": {"name": loss},
                                                     "train": {"epochs": 1}, "output": {"root": "runs"}}))
    assert main(["train", "r.yaml"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [err[-1]] and err[-1].startswith(f"trainlab: error: loss.name: '{loss}' is a loss for ")
    assert f"the data is {task}" in err[-1]
    assert not (tmp_path / "runs").exists()  # nothing written
