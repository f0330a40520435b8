"""Per-model results of the reproductions: written once, read back only when nothing changed."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from krylovadv.torch.masking import MaskingFlag, MaskingReport
from krylovadv.torch.reproduce import ReproduceOptions
from krylovadv.torch.reproduce._common import (
    budget_note,
    flag_from_dict,
    per_model,
    report_from_dict,
    shrink_note,
    weights_label,
)
from krylovadv.torch.reproduce._tuning import TuningRecord


class _Counter:
    """A compute function that counts its calls and returns a payload naming the call."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> dict:
        self.calls += 1
        return {"tuned": {"PGD": 10 + self.calls}, "sweep": [(0.3, 4)]}


def test_per_model_reuses_only_a_matching_run(tmp_path) -> None:
    options = ReproduceOptions(output=tmp_path)
    compute = _Counter()
    key = {"steps": 20, "grid": (0.1, 0.3)}
    first = per_model(options, "pgd-linf", key, compute)
    assert compute.calls == 1 and first["tuned"] == {"PGD": 11}
    assert first["run"]["resumed"] is False and first["run"]["cpu_seconds"] >= 0
    assert (tmp_path / "models" / "pgd-linf.json").is_file()

    again = per_model(options, "pgd-linf", {"steps": 20, "grid": [0.1, 0.3]}, compute)
    assert compute.calls == 1  # read back: a tuple key equals its JSON list
    assert again["tuned"] == first["tuned"] and again["run"]["resumed"] is True
    assert again["run"]["cpu_seconds"] == first["run"]["cpu_seconds"]

    # any change of what the numbers depend on recomputes
    per_model(options, "pgd-linf", {"steps": 10, "grid": [0.1, 0.3]}, compute)
    assert compute.calls == 2
    per_model(ReproduceOptions(output=tmp_path, seed=1), "pgd-linf", {"steps": 10}, compute)
    assert compute.calls == 3
    # another model never reads this one's file
    per_model(options, "trades", {"steps": 10, "grid": [0.1, 0.3]}, compute)
    assert compute.calls == 4


def test_per_model_recomputes_when_the_weights_change(tmp_path) -> None:
    options = ReproduceOptions(output=tmp_path)
    compute = _Counter()
    per_model(options, "pgd-linf", {}, compute)
    path = tmp_path / "models" / "pgd-linf.json"
    stored = json.loads(path.read_text())
    assert len(stored["identity"]["sha256"]) == 64  # the registry's checksum
    stored["identity"]["sha256"] = "0" * 64  # as if the file came from other weights
    path.write_text(json.dumps(stored))
    per_model(options, "pgd-linf", {}, compute)
    assert compute.calls == 2


def test_per_model_without_output_always_computes() -> None:
    compute = _Counter()
    options = ReproduceOptions(output=None)
    per_model(options, "pgd-linf", {}, compute)
    per_model(options, "pgd-linf", {}, compute)
    assert compute.calls == 2


def test_records_and_masking_survive_the_json_round_trip() -> None:
    record = TuningRecord(
        model="m",
        attack="S-O (ℓ2, 4.0)",
        total=100,
        default={"sigma": 0.7, "loss": "cw"},
        chosen={"sigma": 0.3, "loss": "cw"},
        default_correct=40,
        chosen_correct=3,
        sweeps={"sigma": [(0.3, 3), (0.7, 40)], "loss": [("ce", 9), ("cw", 3)]},
        evaluations=3,
        seconds=1.5,
    )
    back = TuningRecord.from_dict(json.loads(json.dumps(record.__dict__)))
    assert back == record and back.changed() == {"sigma": 0.3}
    flags = [MaskingFlag("a", True, "Square 3 vs 9", {"gap": 6}), MaskingFlag("c", False, "ok")]
    report = MaskingReport(flags, 100)
    again = report_from_dict(json.loads(json.dumps(report.to_dict())))
    assert again == report and again.any and again.summary() == report.summary()
    assert flag_from_dict(json.loads(json.dumps(asdict(flags[0])))) == flags[0]


def test_budget_note_sums_cpu_and_names_resumed_models() -> None:
    runs = {
        "a": {"cpu_seconds": 100.4, "wall_seconds": 250, "finished": "t1", "resumed": True},
        "b": {"cpu_seconds": 20.0, "wall_seconds": 30, "finished": "t2", "resumed": False},
    }
    note = budget_note("cpu", runs)
    assert note.startswith("Budget: 120 s of CPU in all on cpu")
    assert "a: 100 s CPU, 250 s wall, finished t1" in note
    assert "(models/<model>.json): a." in note
    assert "the machine was shared" in note and "GPU" not in note  # wall 280 > 1.2 * 120
    assert "Machines" not in note  # results stored before machines were recorded
    with pytest.raises(KeyError):
        budget_note("cpu", {"a": {"wall_seconds": 1}})


def test_budget_note_names_the_machines_and_explains_wall_time_only_when_it_exceeds_cpu():
    runs = {
        "a": {
            "cpu_seconds": 100,
            "wall_seconds": 101,
            "finished": "t",
            "machine": "NVIDIA H200, 16 CPU cores",
        },
        "b": {
            "cpu_seconds": 50,
            "wall_seconds": 50,
            "finished": "t",
            "machine": "NVIDIA H200, 16 CPU cores",
        },
    }
    note = budget_note("cuda", runs)
    assert "Machines: NVIDIA H200, 16 CPU cores." in note
    assert "Wall time exceeds" not in note and "2 cores" not in note
    runs["b"]["wall_seconds"] = 200
    assert "waited for the GPU or the machine was shared" in budget_note("cuda", runs)


def test_per_model_records_the_machine_of_each_computation(tmp_path) -> None:
    from krylovadv.torch.reproduce._common import machine_description

    options = ReproduceOptions(output=tmp_path)
    payload = per_model(options, "madry-natural", {"k": 1}, lambda: {"x": 1}, part="p")
    assert payload["run"]["machine"] == machine_description("cpu")
    assert machine_description("cpu").startswith("cpu, ") and "CPU cores" in machine_description(
        "cpu"
    )


def test_shrink_note_names_only_the_sizes_below_full_scale() -> None:
    full = {"steps": 20, "tuning": 500, "grid": [1, 2, 3], "models": ["a", "b"]}
    quick = {"steps": 10, "tuning": 500, "grid": [1, 3], "models": ["c"]}
    note = shrink_note(quick, full)
    assert (
        note == "Sizes below the full scale (the quick scale's budget): steps 10 (full: 20), "
        "grid [1, 3] (full: [1, 2, 3])."
    )
    assert shrink_note(full, full) == "Sizes: the full scale's."


def test_weights_label_names_the_registered_checksum() -> None:
    from krylovadv.torch.pretrained import load_registry

    sha = load_registry()["models"]["pgd-linf"]["sha256"]
    assert weights_label(["pgd-linf", "unregistered"]) == (
        f"pgd-linf (sha256 {sha[:12]}), unregistered (sha256 ?)"
    )


def test_architecture_note_groups_models_by_their_registered_network():
    from krylovadv.torch.reproduce._common import architecture_note

    note = architecture_note(["madry-natural", "soat", "madry-trades", "pgd-linf"])
    assert "Madry et al.'s MNIST network (conv 32 → pool → conv 64 → pool → fc 1024): " in note
    assert "madry-natural, madry-trades" in note
    assert "the zoo's small CNN: soat, pgd-linf" in note
    assert "ResNet-18" not in note  # never describes a network it did not attack
    assert "?: not-a-model" in architecture_note(["not-a-model"])


def test_soat_reference_note_says_when_architecture_is_confounded():
    from krylovadv.torch.reproduce.soae_table1 import soat_reference_note

    confounded = soat_reference_note("soat", ["madry-pgd-linf", "madry-trades"])
    assert "no PGD or TRADES model shares its architecture" in confounded
    referenced = soat_reference_note("soat", ["madry-pgd-linf", "pgd-linf"])
    assert "same-architecture reference(s) pgd-linf," in referenced
    assert "madry-pgd-linf," not in referenced
    assert "not tested" in soat_reference_note(None, ["pgd-linf"])
