"""Measure how robust Madry et al.'s CNN gets on the 8,000 training digits in a GPU budget.

Measurement only (docs/reproducing/gpu/madry-pgd-budget.json): ``python
docs/tools/gpu_madry_budget.py STEPS SECONDS TAG`` trains PGD-AT with STEPS inner steps for
about SECONDS of wall clock on CUDA and writes /tmp/o/TAG.json and its weights.  Not the
zoo recipe (:mod:`krylovadv.torch.zoo` trains with the Trainer on a CPU).
"""

import json
import sys
import time

import torch
from safetensors.torch import save_file

from krylovadv.data import load_mnist10k
from krylovadv.torch.attacks import PGD
from krylovadv.torch.models import build_model
from krylovadv.torch.training import evaluate_accuracy

steps, budget, tag = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
dev = "cuda"
torch.manual_seed(0)
train = load_mnist10k("train")
X = torch.as_tensor(train.images, device=dev)
Y = torch.as_tensor(train.labels, device=dev)
rep = load_mnist10k("reporting").subset(1000)
Xr = torch.as_tensor(rep.images, device=dev)
Yr = torch.as_tensor(rep.labels, device=dev)
model = build_model("madry-cnn").to(dev)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
g = torch.Generator(device="cpu").manual_seed(0)
t0 = time.time()
epoch = 0
hist = []
while time.time() - t0 < budget:
    perm = torch.randperm(len(X), generator=g).to(dev)
    model.train()
    for k in range(0, len(X), 50):
        idx = perm[k : k + 50]
        eps = min(0.3, 0.3 * (epoch + k / len(X)))  # one-epoch warm-up
        model.eval()
        xa = PGD(
            model,
            eps=max(eps, 1e-3),
            steps=steps,
            alpha=2.5 * max(eps, 1e-3) / steps,
            seed=epoch * 1000 + k,
        )(X[idx], Y[idx])
        model.train()
        loss = torch.nn.functional.cross_entropy(model(xa), Y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    epoch += 1
    model.eval()
    acc = evaluate_accuracy(model, Xr[:200], Yr[:200], eps=0.3, steps=20, seed=epoch)
    hist.append((epoch, round(time.time() - t0, 1), acc["clean_acc"], acc["robust_acc"]))
    print(tag, hist[-1], flush=True)
acc = evaluate_accuracy(model, Xr, Yr, eps=0.3, steps=40, seed=0)
out = {
    "tag": tag,
    "steps": steps,
    "epochs": epoch,
    "seconds": round(time.time() - t0, 1),
    "clean": acc["clean_acc"],
    "pgd40": acc["robust_acc"],
    "history": hist,
}
print(json.dumps(out), flush=True)
json.dump(out, open(f"/tmp/o/{tag}.json", "w"))
save_file(
    {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
    f"/tmp/o/{tag}.safetensors",
)
