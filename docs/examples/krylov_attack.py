"""Plugging a Krylov solver into a PyTorch attack (the tutorial's code, runnable).

Run: ``python docs/examples/krylov_attack.py``.  About 30 s on 2 CPU cores.
"""

import numpy as np
import torch

import krylovadv
from krylovadv.data import load_mnist10k
from krylovadv.torch import PGD, SOAE, InputHessian
from krylovadv.torch.attacks import Attack
from krylovadv.torch.data import make_loader
from krylovadv.torch.evaluate import evaluate
from krylovadv.torch.models import SmallCNN

# --- 1. A small MNIST classifier, trained for one epoch on the embedded digits.
torch.manual_seed(0)
model = SmallCNN()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
for images, labels in make_loader(load_mnist10k("train"), batch_size=128, shuffle=True):
    optimizer.zero_grad()
    torch.nn.functional.cross_entropy(model(images), labels).backward()
    optimizer.step()
model.eval()

test = load_mnist10k("test").subset(32, seed=0)
x = torch.as_tensor(test.images)
y = torch.as_tensor(test.labels)

# --- 2. The input Hessian of each sample's loss is a batched core operator.
H = InputHessian(model, x, y)  # exact products (double backward), per sample
g = H.gradient  # (64, 784): the flattened input gradients
# float32 products: a relative tolerance near sqrt(eps) is what they can deliver.
result = krylovadv.gmres(H, g, rtol=1e-4, restart=30)
statuses = [krylovadv.SolverStatus(s).name for s in result.status]
print(
    "GMRES on H delta = g:",
    {s: statuses.count(s) for s in set(statuses)},
    "| iterations per sample:",
    result.iterations.min(),
    "to",
    result.iterations.max(),
)
print("Hessian-vector products spent:", H.num_hvps, "(only unconverged samples are evaluated)")

# A ReLU network's input Hessian has rank <= K - 1 = 9, so GMRES stops after at most
# 9 steps (a "happy breakdown").  g^T delta >= 0: +H^{-1} g ascends the loss.
ascent = (g * result.x).sum(dim=1)
print("g^T delta >= 0 for all samples:", bool((ascent >= 0).all()))

# --- 3. The dominant curvature direction, by power iteration on the same operator.
start = torch.randn(32, 784, generator=torch.Generator().manual_seed(0))
top = krylovadv.power_iteration(H, v0=start, tol=1e-3, maxiter=50)
print("top eigenvalue of H, median over samples:", float(np.median(top.eigenvalue)))

# --- 4. Finite differences: what the papers use, and how accurate they are here.
H_fd = InputHessian(model, x, y, method="fd-forward")
print("FD relative error estimate, median:", float(np.median(H_fd.fd_error_estimate())))


# --- 5. A new attack in a dozen lines: a damped Newton direction (H + lambda I)^{-1} g.
class DampedNewton(Attack):
    """Steps along (H + lambda I)^{-1} g, solved by GMRES on the input Hessian."""

    name = "DampedNewton"

    def __init__(self, model, *, damping=1e-2, **kwargs):
        super().__init__(model, **kwargs)
        self.damping = damping

    def direction(self, x_adv, x, y, state):
        """Return (H + lambda I)^{-1} g at x_adv, one GMRES cycle per sample."""
        H = InputHessian(self.model, x_adv, y)
        shifted = krylovadv.ShiftedOperator(H, self.damping)
        solve = krylovadv.gmres(shifted, H.gradient, rtol=1e-3, restart=20, maxiter=1)
        return solve.x.reshape(x_adv.shape)


attacks = {
    "PGD-linf": PGD(model, norm="linf", eps=0.2, steps=5),
    "DampedNewton-linf": DampedNewton(model, norm="linf", eps=0.2, steps=5),
    "SOAE-linf": SOAE(model, norm="linf", eps=0.2, steps=5),
}
report = evaluate(model, test, attacks, cascade=False)
print(report.to_markdown())
