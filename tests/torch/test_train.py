"""Tests of krylovadv.torch.training: every method trains, TRADES' KL, schedules, data order."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from krylovadv.torch.training import (
    METHODS,
    StepContext,
    TrainConfig,
    Trainer,
    learning_rate,
    step_seed,
    trades_kl,
    trades_loss,
    trades_perturb,
    warmup_eps,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small models train fastest on one thread; restore the setting afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(**changes) -> TrainConfig:
    """A few steps of small-cnn on 64 embedded digits (seconds on a CPU)."""
    fields = dict(
        model="small-cnn",
        epochs=4,
        train_size=64,
        batch_size=16,
        optimizer="adam",
        lr=5e-3,
        momentum=0.0,
        eps=0.1,
        steps=2,
        eval_subset=20,
        eval_steps=2,
        seed=0,
    )
    fields.update(changes)
    return TrainConfig(**fields)


# --- every method trains ----------------------------------------------------------


@pytest.fixture(scope="module")
def source_checkpoint(tmp_path_factory):
    """A naturally trained model saved as a checkpoint: the ensemble's fixed source."""
    directory = tmp_path_factory.mktemp("source")
    Trainer(
        tiny(method="natural", epochs=1, seed=7, eval_subset=0, checkpoint_dir=str(directory)),
        progress=False,
    ).fit()
    return str(directory)


@pytest.mark.parametrize(
    "method, extra",
    [
        ("natural", {}),
        ("pgd-at", {}),
        ("pgd-at", {"norm": "l2", "eps": 1.0}),
        ("trades", {}),
        ("mixed", {"mixed_mode": "alternate", "mixed_eps_linf": 0.1, "mixed_eps_l2": 1.0}),
        ("mixed", {"mixed_mode": "split", "mixed_eps_linf": 0.1, "mixed_eps_l2": 1.0}),
        ("trades-mix", {"mixed_eps_linf": 0.1, "mixed_eps_l2": 1.0}),
        ("soat", {"soat_max_krylov_dim": 4}),
        ("ensemble", {}),
    ],
)
def test_each_method_loss_falls(method, extra, source_checkpoint):
    if method == "ensemble":
        extra = {"ensemble_sources": [source_checkpoint]}
    result = Trainer(tiny(method=method, **extra), progress=False).fit()
    losses = [record["train_loss"] for record in result.history]
    assert len(losses) == 4 and all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.85 * losses[0], losses
    record = result.history[-1]
    assert record["eval_count"] == 20
    # Accuracies over 20 evaluation samples are counts / 20 (and robust <= clean).
    clean, robust = record["clean_acc"] * 20, record["robust_acc"] * 20
    assert clean == pytest.approx(round(clean), abs=1e-9), record
    assert robust == pytest.approx(round(robust), abs=1e-9), record
    assert 0 <= round(robust) <= round(clean) <= 20
    assert result.global_step == 16
    assert not result.model.training


def test_methods_registry_names():
    assert set(METHODS) == {
        "natural",
        "pgd-at",
        "trades",
        "mixed",
        "trades-mix",
        "soat",
        "ensemble",
    }


# --- TRADES ---------------------------------------------------------------------------


def test_trades_kl_matches_hand_computed_value():
    # p = softmax(0, ln 3) = (1/4, 3/4), q = softmax(0, 0) = (1/2, 1/2)
    natural = torch.tensor([[0.0, math.log(3.0)], [1.0, 2.0]], dtype=torch.float64)
    adversarial = torch.tensor([[0.0, 0.0], [1.0, 2.0]], dtype=torch.float64)
    by_hand = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    kl = trades_kl(natural, adversarial)
    assert kl.shape == (2,)
    assert kl[0].item() == pytest.approx(by_hand, rel=1e-12)
    assert kl[1].item() == pytest.approx(0.0, abs=1e-15)
    # The reference code's criterion: KLDivLoss(size_average=False)(log q, p).
    reference = F.kl_div(F.log_softmax(adversarial, 1), F.softmax(natural, 1), reduction="sum")
    assert kl.sum().item() == pytest.approx(reference.item(), rel=1e-12)


def test_trades_outer_loss_is_ce_plus_beta_batchmean_kl():
    natural = torch.tensor([[0.0, math.log(3.0)], [2.0, 0.0]], dtype=torch.float64)
    adversarial = torch.tensor([[0.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([1, 0])
    kl0 = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    p = math.exp(2) / (1 + math.exp(2))
    kl1 = p * math.log(p / 0.5) + (1 - p) * math.log((1 - p) / 0.5)
    ce = (-math.log(0.75) - math.log(p)) / 2
    loss = trades_loss(natural, adversarial, y, beta=6.0)
    assert loss.item() == pytest.approx(ce + 6.0 * (kl0 + kl1) / 2, rel=1e-12)
    reference = F.cross_entropy(natural, y) + 6.0 * F.kl_div(
        F.log_softmax(adversarial, 1), F.softmax(natural, 1), reduction="batchmean"
    )
    assert loss.item() == pytest.approx(reference.item(), rel=1e-12)


@pytest.mark.parametrize("norm, eps", [("linf", 0.1), ("l2", 0.5)])
def test_trades_inner_max_increases_kl_and_stays_in_ball(norm, eps):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(16, 12), torch.nn.ReLU(), torch.nn.Linear(12, 3)
    ).double()
    model.train()
    x = torch.rand(5, 1, 4, 4, dtype=torch.float64)
    generator = torch.Generator().manual_seed(1)
    x_adv = trades_perturb(
        model, x, eps=eps, steps=10, alpha=2.5 * eps / 10, norm=norm, generator=generator
    )
    assert model.training  # mode restored
    delta = (x_adv - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert bool((size <= eps + 1e-9).all())
    assert 0 <= x_adv.min() and x_adv.max() <= 1
    with torch.no_grad():
        start = trades_kl(model(x), model(x + 0.001 * torch.randn_like(x))).sum()
        final = trades_kl(model(x), model(x_adv)).sum()
    assert final > 10 * start
    again = trades_perturb(
        model,
        x,
        eps=eps,
        steps=10,
        alpha=2.5 * eps / 10,
        norm=norm,
        generator=torch.Generator().manual_seed(1),
    )
    assert torch.equal(x_adv, again)


# --- schedules, seeds, data order --------------------------------------------------


def test_eps_warmup_schedule_values():
    assert warmup_eps(0.3, 0, 0, 5) == 0.3
    values = [warmup_eps(0.3, 2, s, 5) for s in range(12)]
    assert values[0] == pytest.approx(0.03)
    assert values[4] == pytest.approx(0.15)
    assert values[9] == pytest.approx(0.3)
    assert values[10] == values[11] == 0.3
    assert all(values[s] < values[s + 1] for s in range(9))
    assert warmup_eps(2.0, 0.5, 0, 4) == pytest.approx(1.0)


def test_warmup_scales_step_size_in_context():
    trainer = Trainer(
        tiny(method="pgd-at", eps=0.3, steps=10, eps_warmup_epochs=1, batch_size=32, eval_subset=0),
        progress=False,
    )
    ctx = trainer._context(0)  # S = 2 steps per epoch: half of ε at step 0
    assert isinstance(ctx, StepContext)
    assert ctx.eps == pytest.approx(0.15) and ctx.alpha == pytest.approx(2.5 * 0.15 / 10)
    assert trainer._context(5).eps == pytest.approx(0.3)


def test_learning_rate_schedules():
    config = tiny(lr=0.1, lr_schedule="multistep", milestones=[2, 3], lr_gamma=0.1, epochs=4)
    assert [learning_rate(config, s, 10) for s in (0, 19, 20, 30, 39)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.001, 0.001]
    )
    config = tiny(lr=0.1, lr_schedule="cosine", epochs=2)
    assert learning_rate(config, 0, 10) == pytest.approx(0.1)
    assert learning_rate(config, 10, 10) == pytest.approx(0.05)
    assert learning_rate(config, 20, 10) == pytest.approx(0.0, abs=1e-12)
    assert learning_rate(tiny(lr=0.2), 123, 10) == 0.2


def test_step_seed_is_a_pure_function():
    assert step_seed(0, 5) == step_seed(0, 5)
    seeds = {step_seed(0, s, r) for s in range(50) for r in range(2)}
    assert len(seeds) == 100 and all(0 <= s < 2**31 for s in seeds)


def test_data_order_is_seeded_per_epoch_and_covers_the_data():
    trainer = Trainer(tiny(train_size=70, batch_size=32, eval_subset=0), progress=False)
    first, again = trainer.epoch_batches(0), trainer.epoch_batches(0)
    assert [b.tolist() for b in first] == [b.tolist() for b in again]
    assert [len(b) for b in first] == [32, 32, 6]
    assert sorted(torch.cat(first).tolist()) == list(range(70))
    expected = torch.randperm(70, generator=torch.Generator().manual_seed(0 + 1))
    assert torch.equal(torch.cat(trainer.epoch_batches(1)), expected)
    dropped = Trainer(
        tiny(train_size=70, batch_size=32, eval_subset=0, drop_last=True), progress=False
    )
    assert dropped.steps_per_epoch == 2


def test_training_is_reproducible():
    a = Trainer(tiny(method="pgd-at", epochs=1), progress=False).fit()
    b = Trainer(tiny(method="pgd-at", epochs=1), progress=False).fit()
    for (name, p), q in zip(
        a.model.state_dict().items(), b.model.state_dict().values(), strict=True
    ):
        assert torch.equal(p, q), name
    assert a.history[0]["robust_acc"] == b.history[0]["robust_acc"]


# --- mixed and ensemble inner maximizations ---------------------------------------


def _ctx(trainer: Trainer, step: int) -> StepContext:
    return trainer._context(step)


def _sizes(x_adv: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    delta = (x_adv - x).flatten(1)
    return delta.abs().amax(1), delta.norm(dim=1)


def test_mixed_examples_respect_both_balls():
    for mode in ("alternate", "split"):
        trainer = Trainer(
            tiny(
                method="mixed", mixed_mode=mode, mixed_eps_linf=0.1, mixed_eps_l2=1.0, eval_subset=0
            ),
            progress=False,
        )
        x, y = trainer.images[:8], trainer.labels[:8]
        x0 = METHODS["mixed"].perturb(_ctx(trainer, 0), x, y)
        x1 = METHODS["mixed"].perturb(_ctx(trainer, 1), x, y)
        linf0, l20 = _sizes(x0, x)
        linf1, l21 = _sizes(x1, x)
        if mode == "alternate":
            assert bool((linf0 <= 0.1 + 1e-6).all()) and float(linf0.max()) > 0.09
            assert bool((l21 <= 1.0 + 1e-5).all()) and float(l21.max()) > 0.9
            assert float(linf1.max()) > 0.1  # an ℓ2 example leaves the ℓ∞ ball
        else:
            assert bool((linf0[0::2] <= 0.1 + 1e-6).all())
            assert bool((l20[1::2] <= 1.0 + 1e-5).all())
            assert float(linf0[1::2].max()) > 0.1


def test_trades_mix_examples_respect_both_balls_and_use_trades_loss():
    for mode in ("alternate", "split"):
        trainer = Trainer(
            tiny(
                method="trades-mix",
                mixed_mode=mode,
                mixed_eps_linf=0.1,
                mixed_eps_l2=1.0,
                eval_subset=0,
            ),
            progress=False,
        )
        # trades-mix inherits TRADES' outer loss, not a copy of it
        assert type(METHODS["trades-mix"]).loss is type(METHODS["trades"]).loss
        x, y = trainer.images[:8], trainer.labels[:8]
        x0 = METHODS["trades-mix"].perturb(_ctx(trainer, 0), x, y)
        x1 = METHODS["trades-mix"].perturb(_ctx(trainer, 1), x, y)
        linf0, l20 = _sizes(x0, x)
        linf1, l21 = _sizes(x1, x)
        if mode == "alternate":
            assert bool((linf0 <= 0.1 + 1e-6).all()) and float(linf0.max()) > 0.09
            assert bool((l21 <= 1.0 + 1e-5).all()) and float(l21.max()) > 0.5
            assert float(linf1.max()) > 0.1  # an ℓ2 example leaves the ℓ∞ ball
        else:
            assert bool((linf0[0::2] <= 0.1 + 1e-6).all())
            assert bool((l20[1::2] <= 1.0 + 1e-5).all())
            assert float(linf0[1::2].max()) > 0.1


def test_ensemble_source_draw_is_seeded(source_checkpoint):
    trainer = Trainer(
        tiny(method="ensemble", ensemble_sources=[source_checkpoint], eval_subset=0), progress=False
    )
    assert len(trainer.sources) == 1 and not trainer.sources[0].training
    assert all(not p.requires_grad for p in trainer.sources[0].parameters())
    x, y = trainer.images[:4], trainer.labels[:4]
    outputs = [METHODS["ensemble"].perturb(_ctx(trainer, s), x, y) for s in range(8)]
    again = [METHODS["ensemble"].perturb(_ctx(trainer, s), x, y) for s in range(8)]
    assert all(torch.equal(a, b) for a, b in zip(outputs, again, strict=True))
    from krylovadv.torch.attacks import FGSM

    draws = []
    for step, output in enumerate(outputs):
        ctx = _ctx(trainer, step)
        draw = int(torch.randint(2, (1,), generator=torch.Generator().manual_seed(ctx.seed)))
        draws.append(draw)
        source = [trainer.model, trainer.sources[0]][draw]
        assert torch.equal(output, FGSM(source, eps=ctx.eps, norm="linf")(x, y))
    assert set(draws) == {0, 1}  # both the current model and the source are used


# --- configuration --------------------------------------------------------------------


def test_config_json_round_trip_and_errors():
    config = tiny(method="mixed", milestones=[1], ensemble_sources=[])
    again = TrainConfig.from_json(config.to_json())
    assert again == config
    json.loads(config.to_json())
    with pytest.raises(ValueError, match="unknown TrainConfig field"):
        TrainConfig.from_dict({"methd": "natural"})
    with pytest.raises(ValueError, match="method must be one of"):
        tiny(method="fgsm-at")
    with pytest.raises(ValueError, match="ensemble_sources"):
        tiny(method="ensemble")
    with pytest.raises(ValueError, match="eps"):
        tiny(eps=-1.0)


def test_evaluation_can_be_disabled():
    result = Trainer(tiny(method="natural", epochs=1, eval_subset=0), progress=False).fit()
    assert result.global_step == 4 and result.history[0]["clean_acc"] is None
    assert np.isfinite(result.history[0]["train_loss"])
