"""The lean optimizer step (optim/lean.py) gives torch.optim's update and state bit for bit, steps in
only where step() would do the same, and changes nothing when it refuses."""
from __future__ import annotations

import copy
import logging

import pytest
import torch
from torch import nn

from trainlab.optim import lean as lean_module
from trainlab.optim.lean import KERNELS, LeanStep, kernel_signature, kernels_match
from trainlab.recipe import load_recipe
from trainlab.train import Trainer

CONFIGS = [
    (torch.optim.SGD, dict(lr=0.1, momentum=0.9)),
    (torch.optim.SGD, dict(lr=0.1, momentum=0.0, weight_decay=1e-2)),
    (torch.optim.SGD, dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=5e-4)),
    (torch.optim.SGD, dict(lr=0.05, momentum=0.5, dampening=0.3, maximize=True)),
    (torch.optim.Adam, dict(lr=1e-2)),
    (torch.optim.Adam, dict(lr=1e-2, weight_decay=1e-2, amsgrad=True, betas=(0.8, 0.95))),
    (torch.optim.AdamW, dict(lr=1e-2, weight_decay=0.1)),
    (torch.optim.AdamW, dict(lr=1e-2, weight_decay=0.1, amsgrad=True, eps=1e-6, maximize=True)),
]


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 3))


def _groups(model: nn.Module) -> list[dict]:
    # two groups with their own LR and decay, as trainlab's param_groups builds (no decay on biases)
    weights = [p for n, p in model.named_parameters() if n.endswith("weight")]
    biases = [p for n, p in model.named_parameters() if n.endswith("bias")]
    return [{"params": weights}, {"params": biases, "lr": 0.02, "weight_decay": 0.0}]


def _grads(model: nn.Module, step: int) -> None:
    g = torch.Generator().manual_seed(step)
    x, y = torch.randn(32, 12, generator=g), torch.randint(0, 3, (32,), generator=g)
    nn.functional.cross_entropy(model(x), y).backward()


def _states_equal(a: torch.optim.Optimizer, b: torch.optim.Optimizer) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    assert sa["state"].keys() == sb["state"].keys()
    for k in sa["state"]:
        for name, v in sa["state"][k].items():
            w = sb["state"][k][name]
            assert torch.equal(v, w) if isinstance(v, torch.Tensor) else v == w, (k, name)


@pytest.mark.parametrize("cls,kw", CONFIGS, ids=lambda c: c.__name__ if isinstance(c, type) else None)
def test_lean_step_equals_optimizer_step_bit_for_bit(cls, kw):
    ref_model, lean_model = _model(), _model()
    ref = cls(_groups(ref_model), fused=True, **kw)
    opt = cls(_groups(lean_model), fused=True, **kw)
    # the schedule moves the LR (and SGD's momentum) every step: the lean step must read them afresh
    sched = [torch.optim.lr_scheduler.OneCycleLR(o, max_lr=[0.2, 0.05], total_steps=20,
                                                 cycle_momentum=cls is torch.optim.SGD and kw["momentum"] > 0)
             for o in (ref, opt)]
    lean = LeanStep(opt)
    assert lean.active
    used = []
    for step in range(8):
        for m in (ref_model, lean_model):
            _grads(m, step)
        ref.step()
        ref.zero_grad(set_to_none=True)
        took = lean.step()
        if not took:
            opt.step()
        lean.zero_grad()
        used.append(took)
        for s in sched:
            s.step()
    # the first step creates the state (momentum buffers, moments) through step(); then the kernel
    assert used == [kw.get("momentum", 1.0) == 0.0] + [True] * 7
    for a, b in zip(ref_model.parameters(), lean_model.parameters()):
        assert torch.equal(a, b)
        assert b.grad is None
    _states_equal(ref, opt)
    # and the run did move: not a comparison of two untouched models
    assert not torch.equal(next(_model().parameters()), next(lean_model.parameters()))


def test_lean_step_follows_a_loaded_state_dict():
    """load_state_dict replaces the state tensors: the next lean step must update the new ones."""
    a_model, b_model = _model(), _model()
    a = torch.optim.AdamW(a_model.parameters(), lr=1e-2, fused=True)
    b = torch.optim.AdamW(b_model.parameters(), lr=1e-2, fused=True)
    lean = LeanStep(b)
    for step in range(3):
        for m in (a_model, b_model):
            _grads(m, step)
        a.step()
        a.zero_grad()
        if not lean.step():  # the first step creates the state through step()
            assert step == 0
            b.step()
        lean.zero_grad()
    saved_model, saved_opt = copy.deepcopy(a_model.state_dict()), copy.deepcopy(a.state_dict())
    for step in range(3, 5):  # a moves on; b is then reset to a's saved point and must follow it
        _grads(a_model, step)
        a.step()
        a.zero_grad()
    b_model.load_state_dict(saved_model)
    b.load_state_dict(saved_opt)
    for step in range(3, 5):
        _grads(b_model, step)
        assert lean.step()
        lean.zero_grad()
    for p, q in zip(a_model.parameters(), b_model.parameters()):
        assert torch.equal(p, q)
    _states_equal(a, b)


def _stepped_once():
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, fused=True)
    _grads(model, 0)
    opt.step()
    opt.zero_grad()
    return model, opt


def _snapshot(model, opt):
    return [p.detach().clone() for p in model.parameters()], copy.deepcopy(opt.state_dict())


def test_lean_step_refuses_without_changing_anything():
    model, opt = _stepped_once()
    lean = LeanStep(opt)
    # a step hook: step() must run so the hook does
    _grads(model, 1)
    before = _snapshot(model, opt)
    handle = opt.register_step_pre_hook(lambda *a: None)
    assert lean.step() is False
    handle.remove()
    # a parameter with a gradient but no momentum buffer yet (e.g. just unfrozen): step() allocates it
    del opt.state[next(model.parameters())]
    assert lean.step() is False
    after = _snapshot(model, opt)
    for p, q in zip(before[0], after[0]):
        assert torch.equal(p, q)
    # a GradScaler's attributes
    model, opt = _stepped_once()
    _grads(model, 1)
    opt.grad_scale = torch.ones(())
    assert LeanStep(opt).step() is False


def test_lean_step_is_off_where_it_cannot_be_exact():
    model = _model()
    assert not LeanStep(torch.optim.SGD(model.parameters(), lr=0.1, foreach=True)).active  # not fused
    assert not LeanStep(torch.optim.RMSprop(model.parameters(), lr=0.1)).active  # no fused kernel here

    class MySGD(torch.optim.SGD):  # a subclass may change step(): leave it to step()
        pass
    assert not LeanStep(MySGD(model.parameters(), lr=0.1, fused=True)).active
    assert not LeanStep(torch.optim.SGD(model.parameters(), lr=0.1, fused=True), enabled=False).active


def test_lean_step_skips_parameters_without_gradients_like_step():
    ref_model, lean_model = _model(), _model()
    ref = torch.optim.SGD(ref_model.parameters(), lr=0.1, momentum=0.9, fused=True)
    opt = torch.optim.SGD(lean_model.parameters(), lr=0.1, momentum=0.9, fused=True)
    lean = LeanStep(opt)
    for step in range(4):
        for m in (ref_model, lean_model):
            _grads(m, step)
            if step >= 2:
                m[2].bias.grad = None  # a parameter that got no gradient this step
        ref.step()
        ref.zero_grad()
        if not lean.step():
            opt.step()
        lean.zero_grad()
    for a, b in zip(ref_model.parameters(), lean_model.parameters()):
        assert torch.equal(a, b)
    _states_equal(ref, opt)


def _trainer(optim: str, lean: bool) -> Trainer:
    recipe = load_recipe({"name": "t", "seed": 3, "data": {"source": "synthetic:classification", "n": 300, "batch_size": 32},
                          "model": {"name": "mlp", "widths": [16]},
                          "optim": {"name": optim, "lr": 0.05},
                          "schedule": {"name": "cosine", "warmup": 3},
                          "train": {"epochs": 2, "threads": 1, "lean_step": lean}})
    return Trainer(recipe, progress=False)


def _train(optim: str, lean: bool):
    t = _trainer(optim, lean)
    logs = t.fit()
    return t, logs


@pytest.mark.parametrize("optim", ["sgd", "adamw"])
def test_trainer_with_and_without_the_lean_step_trains_the_same_weights(optim):
    fast, fast_logs = _train(optim, True)
    slow, slow_logs = _train(optim, False)
    assert fast.lean.active and not slow.lean.active
    for a, b in zip(fast.model.parameters(), slow.model.parameters()):
        assert torch.equal(a, b)
    assert fast_logs["train.loss"] == slow_logs["train.loss"]
    assert fast.step == slow.step > 0


@pytest.fixture
def fresh_check():
    """kernels_match is cached per process: start and leave with a fresh check."""
    kernels_match.cache_clear()
    yield
    kernels_match.cache_clear()


def test_the_kernels_have_the_signatures_the_lean_step_calls():
    # on the torch this project pins (pyproject.toml): every kernel as KERNELS writes it down
    for kind, kernels in KERNELS.items():
        for name, expected in kernels.items():
            assert kernel_signature(name) == expected, name
        assert kernels_match(kind)


def test_without_the_kernel_the_lean_step_falls_back_to_step_bit_for_bit(monkeypatch, fresh_check, caplog):
    reference, _ = _train("sgd", False)
    model = _model()
    with caplog.at_level(logging.DEBUG, logger="trainlab"), monkeypatch.context() as m:
        m.delattr(torch, "_fused_sgd_")  # as on a torch build without it, while the check runs
        assert not LeanStep(torch.optim.SGD(model.parameters(), lr=0.1, fused=True)).active
        fallback = _trainer("sgd", True)  # lean_step: true asked for, not available
        adamw = LeanStep(torch.optim.AdamW(model.parameters(), lr=0.1, fused=True))
    # (torch's own fused SGD step() calls the kernel too: it is back for the training run)
    logs = fallback.fit()
    assert not fallback.lean.active and fallback.step > 0
    assert adamw.active  # its kernels are still there
    for a, b in zip(fallback.model.parameters(), reference.model.parameters()):
        assert torch.equal(a, b)
    assert logs["train.loss"] == reference.history[-1]["train.loss"]
    lines = [r.getMessage() for r in caplog.records if r.name == "trainlab"]
    assert len(lines) == 1 and "torch._fused_sgd_ is missing" in lines[0] and lines[0].startswith("lean step off")


def test_a_kernel_with_another_signature_turns_the_lean_step_off(monkeypatch, fresh_check):
    real = kernel_signature
    monkeypatch.setattr(lean_module, "kernel_signature",  # as if a newer torch renamed an argument
                        lambda name: real(name).replace("beta1", "b1") if name == "_fused_adamw_" else real(name))
    model = _model()
    assert not LeanStep(torch.optim.AdamW(model.parameters(), lr=1e-2, fused=True)).active
    assert not LeanStep(torch.optim.Adam(model.parameters(), lr=1e-2, fused=True)).active  # same kind: both kernels
    assert LeanStep(torch.optim.SGD(model.parameters(), lr=0.1, fused=True)).active
    assert not kernels_match("adam") and kernels_match("sgd")
