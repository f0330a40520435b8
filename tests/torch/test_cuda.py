"""The same computations on a CUDA device as on the CPU (``nox -s gpu`` on a GPU machine).

The default selection (``-m "not slow and not gpu"``) leaves them out, since CI has
no GPU; ``nox -s gpu`` (or ``pytest -m gpu tests/torch/test_cuda.py``) runs them, and
they were run on one NVIDIA H200 (14 passed).  CUDA and CPU kernels round differently
and draw different random streams, so the comparisons are of solutions (against the
same tolerance contract), of operators (to float32 rounding) and of attack strength
(within a few digits of 200), never of bits.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import krylovadv
from krylovadv.data import load_mnist10k
from krylovadv.torch import InputHessian
from krylovadv.torch.attacks import APGD, APGDT, PGD, SO, SOAE, Square, first_order_cascade
from krylovadv.torch.pretrained import load_pretrained

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
CUDA = "cuda"


def _digits(n: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    data = load_mnist10k("reporting").subset(n)
    return (
        torch.as_tensor(data.images, device=device),
        torch.as_tensor(data.labels, device=device),
    )


def test_batched_gmres_on_cuda_meets_the_true_residual_contract():
    rng = np.random.default_rng(0)
    n, batch = 40, 6
    a = rng.standard_normal((batch, n, n)) + 8 * np.eye(n)
    b = rng.standard_normal((batch, n))
    result = krylovadv.gmres(torch.as_tensor(a, device=CUDA), torch.as_tensor(b, device=CUDA))
    assert result.x.device.type == torch.device(CUDA).type and result.x.dtype == torch.float64
    x = result.x.cpu().numpy()
    residual = np.linalg.norm(b - np.einsum("bij,bj->bi", a, x), axis=1)
    assert np.all(residual <= 1e-5 * np.linalg.norm(b, axis=1))
    # forward error ≤ κ(A) · relative residual (the default rtol 1e-5), per sample
    exact = np.linalg.solve(a, b[..., None])[..., 0]
    forward = np.linalg.norm(x - exact, axis=1) / np.linalg.norm(exact, axis=1)
    assert np.all(forward <= np.linalg.cond(a) * 1e-5)


@pytest.mark.parametrize("solver", ["cg", "minres"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_symmetric_solvers_on_cuda_meet_the_contract_and_keep_device_and_dtype(solver, dtype):
    rng = np.random.default_rng(1)
    n, batch = 30, 5
    q = np.linalg.qr(rng.standard_normal((batch, n, n)))[0]
    a = np.einsum("bij,bj,bkj->bik", q, np.linspace(1.0, 50.0, n) * np.ones((batch, 1)), q)
    b = rng.standard_normal((batch, n))
    rtol = 1e-8 if dtype == torch.float64 else 1e-4
    result = getattr(krylovadv, solver)(
        torch.as_tensor(a, dtype=dtype, device=CUDA),
        torch.as_tensor(b, dtype=dtype, device=CUDA),
        rtol=rtol,
    )
    assert result.x.device.type == torch.device(CUDA).type and result.x.dtype == dtype
    assert np.all(result.converged)
    x = result.x.cpu().double().numpy()
    residual = np.linalg.norm(b - np.einsum("bij,bj->bi", a, x), axis=1)
    # the contract is on the true residual of the returned x, in the working precision
    slack = 1.0 if dtype == torch.float64 else 2.0
    assert np.all(residual <= slack * rtol * np.linalg.norm(b, axis=1))


def test_input_hessian_products_agree_between_cuda_and_cpu():
    model_cpu = load_pretrained("madry-natural").double().eval()
    model_gpu = load_pretrained("madry-natural").double().eval().to(CUDA)
    x, y = _digits(8, "cpu")
    x = x.double()
    v = torch.randn(8, x[0].numel(), generator=torch.Generator().manual_seed(1), dtype=x.dtype)
    for method in ("exact", "gauss-newton", "fd-central"):
        on_cpu = InputHessian(model_cpu, x, y, method=method).matvec(v)
        on_gpu = InputHessian(model_gpu, x.to(CUDA), y.to(CUDA), method=method).matvec(v.to(CUDA))
        scale = on_cpu.abs().amax(dim=1, keepdim=True)
        error = ((on_gpu.cpu() - on_cpu).abs() / scale).amax()
        assert error < (1e-8 if method != "fd-central" else 1e-4), (method, float(error))


@pytest.mark.parametrize(
    "make",
    [
        lambda m: PGD(m, eps=0.3, steps=20, seed=0),
        lambda m: APGD(m, eps=0.3, steps=20, seed=0),
        lambda m: APGDT(m, eps=0.3, steps=10, n_target_classes=3, seed=0),
        lambda m: Square(m, eps=0.3, queries=100, seed=0),
        lambda m: SOAE(m, eps=0.3, steps=5, max_krylov_dim=5),
        lambda m: SO(m, eps=0.3, steps=5, samples=4, seed=0),
        lambda m: first_order_cascade(
            m, eps=0.3, steps=10, n_target_classes=2, square_queries=50, seed=0
        ),
    ],
    ids=["PGD", "APGD", "APGDT", "Square", "SOAE", "S-O", "cascade"],
)
def test_attacks_on_cuda_stay_in_the_ball_and_match_cpu_strength(make):
    n = 200
    model_cpu = load_pretrained("madry-pgd-linf").eval()
    model_gpu = load_pretrained("madry-pgd-linf").eval().to(CUDA)
    x, y = _digits(n, "cpu")
    adv_cpu = make(model_cpu)(x, y)
    adv_gpu = make(model_gpu)(x.to(CUDA), y.to(CUDA))
    assert adv_gpu.device.type == torch.device(CUDA).type
    assert float((adv_gpu - x.to(CUDA)).abs().amax()) <= 0.3 + 1e-6
    assert float(adv_gpu.amin()) >= 0.0 and float(adv_gpu.amax()) <= 1.0
    with torch.no_grad():
        right_cpu = int((model_cpu(adv_cpu).argmax(1) == y).sum())
        right_gpu = int((model_gpu(adv_gpu).argmax(1) == y.to(CUDA)).sum())
    # different random streams and rounding: equal strength within ~3 standard errors
    assert abs(right_cpu - right_gpu) <= 3 * np.sqrt(n * 0.25) + 2, (right_cpu, right_gpu)


def test_training_step_on_cuda_with_the_mnist_resnet18():
    from krylovadv.torch.training import TrainConfig, Trainer

    config = TrainConfig(
        model="resnet18",
        model_kwargs={"in_channels": 1},
        method="pgd-at",
        steps=2,
        epochs=1,
        train_size=64,
        batch_size=32,
        eval_subset=16,
        eval_steps=2,
        device=CUDA,
    )
    result = Trainer(config, progress=False).fit()
    assert next(result.model.parameters()).device.type == torch.device(CUDA).type
    assert len(result.history) == 1 and np.isfinite(result.history[0]["train_loss"])
