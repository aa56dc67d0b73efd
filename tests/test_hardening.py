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


@pytest.mark.parametrize("total_steps", [1, 2, 3, 4, 5, 8])
def test_one_cycle_of_a_few_steps_trains(total_steps):
    """A warm-up of exactly one step (pct_start 0.25 of 4 steps) made torch's OneCycleLR divide by zero."""
    import torch

    from trainlab.optim.schedules import one_cycle

    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    sched = one_cycle(opt, total_steps)
    lrs = []
    for _ in range(total_steps):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert all(0 < lr <= 0.1 + 1e-12 for lr in lrs[:-1])
