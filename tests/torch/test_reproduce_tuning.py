"""The coordinate search of the reproductions (pure: a planted accuracy function)."""

from __future__ import annotations

import pytest

from krylovadv.torch.reproduce._tuning import Knob, coordinate_search, tuning_markdown


def _planted(params: dict) -> int:
    # correct digits (of 100) as a planted function of the settings: best at
    # sigma = 0.3 with loss "cw"; restarts do nothing.
    base = {0.1: 60, 0.3: 40, 0.7: 70}[params["sigma"]]
    return base - (15 if params["loss"] == "cw" else 0)


def test_coordinate_search_finds_the_planted_optimum_and_records_sweeps() -> None:
    calls = []

    def run(params: dict) -> int:
        calls.append(dict(params))
        return _planted(params)

    record = coordinate_search(
        run,
        {"sigma": 0.7, "loss": "ce", "restarts": 1},
        [Knob("sigma", [0.1, 0.3, 0.7]), Knob("loss", ["ce", "cw"]), Knob("restarts", [1, 2])],
        model="m",
        attack="S-O",
        total=100,
    )
    assert record.chosen == {"sigma": 0.3, "loss": "cw", "restarts": 1}
    assert (record.default_correct, record.chosen_correct) == (70, 25)
    # each knob's sweep is measured with the earlier knobs at their best values
    assert record.sweeps["sigma"] == [(0.1, 60), (0.3, 40), (0.7, 70)]
    assert record.sweeps["loss"] == [("ce", 40), ("cw", 25)]
    assert record.sweeps["restarts"] == [(1, 25), (2, 25)]  # tie keeps the default
    # settings are cached: defaults + 2 new sigmas + 1 new loss + 1 new restarts
    assert record.evaluations == len(calls) == 5
    assert record.changed() == {"sigma": 0.3, "loss": "cw"}
    assert "sigma: 0.1 → 60, 0.3 → 40" in tuning_markdown([record])


def test_knob_extra_settings_and_missing_defaults() -> None:
    seen = []
    record = coordinate_search(
        lambda p: seen.append(p) or (10 if p.get("hvp") == "fd" and p["eta"] == 0.01 else 50),
        {"hvp": "exact", "eta": 1e-5},
        [Knob("eta", [1e-5, 1e-2], extra={"hvp": "fd"})],
        model="m",
        attack="SOAE",
        total=100,
    )
    assert record.chosen == {"hvp": "fd", "eta": 1e-2}
    assert all(p["hvp"] == "fd" for p in seen[1:])
    with pytest.raises(ValueError, match="no default"):
        coordinate_search(lambda p: 0, {}, [Knob("tau", [1e-3])], model="m", attack="a", total=1)
