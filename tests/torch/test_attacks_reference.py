"""PGD and FGSM against torchattacks on a small CNN trained on MNIST digits.

Same model, same digits, same eps, step size and number of steps.  Without a random
start both implementations follow the same iterates (torchattacks
differentiates the batch-mean loss, which leaves the sign and the normalised
gradient unchanged, up to its 1e-10 guard); with a random start the robust
accuracies are compared over several seeds with a small slack.
"""

from __future__ import annotations

import pytest
import torch
import torchattacks  # installed by the README test command (pip --no-deps)
from attack_fixtures import one_cpu_thread, test_digits, trained_cnn

from krylovadv.torch.attacks import FGSM, PGD

N_DIGITS = 200
STEPS = 10
#: eps where the trained CNN keeps about half its accuracy: the comparison is informative.
EPS = {"linf": 0.05, "l2": 1.0}
SEEDS = (0, 1, 2)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    yield from one_cpu_thread()


@pytest.fixture(scope="module")
def setting():
    model = trained_cnn()
    x, y = test_digits(N_DIGITS)
    return model, x, y


def robust(model, x_adv, y) -> int:
    with torch.no_grad():
        return int((model(x_adv).argmax(1) == y).sum())


def reference_pgd(model, norm, eps, alpha, random_start):
    cls = torchattacks.PGD if norm == "linf" else torchattacks.PGDL2
    return cls(model, eps=eps, alpha=alpha, steps=STEPS, random_start=random_start)


def test_trained_model_classifies(setting):
    model, x, y = setting
    assert robust(model, x, y) >= 0.85 * N_DIGITS


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_without_random_start_follows_torchattacks(setting, norm):
    model, x, y = setting
    eps = EPS[norm]
    alpha = 2.5 * eps / STEPS
    ours = PGD(model, norm=norm, eps=eps, alpha=alpha, steps=STEPS, random_start=False)(x, y)
    theirs = reference_pgd(model, norm, eps, alpha, random_start=False)(x, y)
    assert robust(model, ours, y) <= robust(model, theirs, y) + 1
    if norm == "linf":
        torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_with_random_start_is_at_least_as_strong_as_torchattacks(setting, norm):
    model, x, y = setting
    eps = EPS[norm]
    alpha = 2.5 * eps / STEPS
    ours = theirs = 0
    for seed in SEEDS:
        ours += robust(
            model, PGD(model, norm=norm, eps=eps, alpha=alpha, steps=STEPS, seed=seed)(x, y), y
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            theirs += robust(model, reference_pgd(model, norm, eps, alpha, True)(x, y), y)
    # On CPU a generator seeded with s draws what torch.manual_seed(s) draws, and both
    # libraries draw their start in the same order, so the counts agree; allow one digit
    # per seed for other backends.
    assert ours <= theirs + len(SEEDS), (ours, theirs)
    assert 0.1 * N_DIGITS * len(SEEDS) < theirs < 0.8 * N_DIGITS * len(SEEDS)


def test_fgsm_matches_torchattacks(setting):
    model, x, y = setting
    ours = FGSM(model, eps=0.1)(x, y)
    theirs = torchattacks.FGSM(model, eps=0.1)(x, y)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)
