"""Per-model hyper-parameter search of an attack on the tuning digits (coordinate search).

Every reproduction chooses each attack's settings per model on the *tuning*
part of the test digits (:func:`krylovadv.data.mnist10k_tuning_split`) and
reports on the *reporting* part only.  The search is a coordinate search: start
from the authors' defaults; for each knob in turn, evaluate every value of its
grid with the other knobs at their best values so far, and keep the value that
leaves the fewest tuning digits correctly classified (ties keep the earlier
value, so the defaults win ties).  Its cost is the *sum* of the grid sizes, not
their product, and every knob's sweep is a sensitivity curve (accuracy against
that knob, the others fixed) that the reports plot with 95 % intervals.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..evaluate import wilson_interval
from ..masking import count_correct
from ._common import per_model

__all__ = [
    "AttackSpec",
    "Knob",
    "TuningRecord",
    "coordinate_search",
    "count_correct",
    "merge_parts",
    "plot_sweeps",
    "tune_and_report",
    "tune_in_parts",
    "tuned_table_data",
    "tuning_markdown",
]


@dataclass(frozen=True)
class Knob:
    """One hyper-parameter of the search.

    Attributes
    ----------
    name : str
        Keyword of the attack factory.
    values : sequence
        Its grid (searched in this order).
    extra : dict
        Other keywords set together with every value of this knob (e.g. the
        finite-difference product for a sweep of its step η).
    """

    name: str
    values: Sequence[Any]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TuningRecord:
    """The search of one attack on one model.

    Attributes
    ----------
    model, attack : str
        Zoo name and table column.
    total : int
        Tuning digits.
    default, chosen : dict
        The authors' settings and the chosen ones.
    default_correct, chosen_correct : int
        Tuning digits still correct under them.
    sweeps : dict
        Knob name → list of ``(value, correct)`` in grid order.
    evaluations : int
        Distinct settings evaluated.
    seconds : float
        Wall time of the search.
    """

    model: str
    attack: str
    total: int
    default: dict[str, Any]
    chosen: dict[str, Any]
    default_correct: int
    chosen_correct: int
    sweeps: dict[str, list[tuple[Any, int]]]
    evaluations: int
    seconds: float

    def changed(self) -> dict[str, Any]:
        """Return the chosen settings that differ from the defaults."""
        return {k: v for k, v in self.chosen.items() if self.default.get(k) != v}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TuningRecord:
        """Rebuild a record from its ``__dict__`` after a JSON round trip (sweeps as pairs)."""
        fields = dict(data)
        fields["sweeps"] = {
            knob: [(value, int(correct)) for value, correct in sweep]
            for knob, sweep in fields["sweeps"].items()
        }
        return cls(**fields)


def _key(params: dict[str, Any]) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


def coordinate_search(
    run: Callable[[dict[str, Any]], int],
    defaults: dict[str, Any],
    knobs: Sequence[Knob],
    *,
    model: str,
    attack: str,
    total: int,
) -> TuningRecord:
    """Coordinate search from ``defaults`` over ``knobs`` (see the module docstring).

    Parameters
    ----------
    run : callable
        ``run(params) -> correct``: tuning digits still correct under the attack
        built with ``params``.
    defaults : dict
        The authors' settings (every knob's name must be a key).
    knobs : sequence of Knob
        Searched in order.
    model, attack : str
        Labels of the record.
    total : int
        Tuning digits.

    Returns
    -------
    TuningRecord
    """
    missing = [k.name for k in knobs if k.name not in defaults]
    if missing:
        raise ValueError(f"knobs {missing} have no default; add them to defaults.")
    start = time.perf_counter()
    cache: dict[tuple, int] = {}

    def measure(params: dict[str, Any]) -> int:
        key = _key(params)
        if key not in cache:
            cache[key] = int(run(dict(params)))
        return cache[key]

    best = dict(defaults)
    best_correct = default_correct = measure(best)
    sweeps: dict[str, list[tuple[Any, int]]] = {}
    for knob in knobs:
        sweep = []
        for value in knob.values:
            trial = dict(best, **knob.extra, **{knob.name: value})
            correct = measure(trial)
            sweep.append((value, correct))
            if correct < best_correct:
                best, best_correct = trial, correct
        sweeps[knob.name] = sweep
    return TuningRecord(
        model=model,
        attack=attack,
        total=total,
        default=dict(defaults),
        chosen=best,
        default_correct=default_correct,
        chosen_correct=best_correct,
        sweeps=sweeps,
        evaluations=len(cache),
        seconds=time.perf_counter() - start,
    )


def plot_sweeps(
    records: Sequence[TuningRecord], knob: str, *, title: str, xlabel: str, log_x: bool = False
) -> Any:
    """Plot accuracy (with 95 % Wilson intervals) against ``knob``, one line per record.

    Returns the matplotlib figure (the caller saves and closes it), or ``None``
    if no record swept ``knob``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [r for r in records if knob in r.sweeps and len(r.sweeps[knob]) > 1]
    if not records:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for record in records:
        values = [v for v, _ in record.sweeps[knob]]
        acc = [100 * c / record.total for _, c in record.sweeps[knob]]
        bounds = [wilson_interval(c, record.total) for _, c in record.sweeps[knob]]
        # max(0, ·): at 0 % or 100 % the bound equals the estimate up to rounding.
        low = [max(0.0, a - 100 * lo) for a, (lo, _) in zip(acc, bounds, strict=True)]
        high = [max(0.0, 100 * hi - a) for a, (_, hi) in zip(acc, bounds, strict=True)]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        xs = values if numeric else list(range(len(values)))
        ax.errorbar(xs, acc, yerr=[low, high], marker="o", capsize=3, label=record.model)
        if not numeric:
            ax.set_xticks(xs, [str(v) for v in values])
        elif all(isinstance(v, int) for v in values):
            ax.set_xticks(values)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy on the tuning digits (%)")
    ax.set_title(title, fontsize=9)
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


@dataclass(frozen=True)
class AttackSpec:
    """A tuned column of a reproduction: how to build the attack, its defaults and grid.

    Attributes
    ----------
    column : str
        Table column.
    build : callable
        ``build(model, params) -> attack``.
    defaults : dict
        The authors' settings (the "authors' defaults" row).
    knobs : sequence of Knob
        The grid of the coordinate search (empty: not tuned, e.g. APGD).
    """

    column: str
    build: Callable[[Any, dict[str, Any]], Any]
    defaults: dict[str, Any]
    knobs: Sequence[Knob] = ()


def tune_and_report(
    model: Any,
    name: str,
    specs: Sequence[AttackSpec],
    tuning: tuple[Any, Any],
    reporting: tuple[Any, Any],
    *,
    share: dict[str, str] | None = None,
) -> tuple[dict[str, int], dict[str, int], dict[str, TuningRecord], dict[str, dict[str, Any]]]:
    """Tune every spec on the tuning digits, then count both settings on the reporting digits.

    Parameters
    ----------
    model : torch.nn.Module
        The model.
    name : str
        Its zoo name (for the records).
    specs : sequence of AttackSpec
        The columns.
    tuning, reporting : (x, y)
        The two disjoint parts of the digits.
    share : dict, optional
        Column → column whose chosen settings it reuses instead of its own search
        (e.g. S-O ℓ2 2.0 takes the settings chosen for S-O ℓ2 4.0).

    Returns
    -------
    default_counts, tuned_counts : dict
        Column → reporting digits still correct (the tuned attack is not re-run
        when its settings equal the defaults).
    records : dict
        Column → :class:`TuningRecord` (columns with knobs only).
    chosen : dict
        Column → the settings used in the tuned row.
    """
    share = share or {}
    x_t, y_t = tuning
    x_r, y_r = reporting
    records: dict[str, TuningRecord] = {}
    chosen: dict[str, dict[str, Any]] = {}
    defaults: dict[str, int] = {}
    tuned: dict[str, int] = {}
    for spec in specs:
        if spec.column in share:
            chosen[spec.column] = dict(chosen[share[spec.column]])
        elif spec.knobs:
            record = coordinate_search(
                lambda p, s=spec: count_correct(model, s.build(model, p), x_t, y_t),
                spec.defaults,
                spec.knobs,
                model=name,
                attack=spec.column,
                total=int(y_t.shape[0]),
            )
            records[spec.column] = record
            chosen[spec.column] = record.chosen
        else:
            chosen[spec.column] = dict(spec.defaults)
        defaults[spec.column] = count_correct(model, spec.build(model, spec.defaults), x_r, y_r)
        if _key(chosen[spec.column]) == _key(spec.defaults):
            tuned[spec.column] = defaults[spec.column]
        else:
            tuned[spec.column] = count_correct(
                model, spec.build(model, chosen[spec.column]), x_r, y_r
            )
    return defaults, tuned, records, chosen


def tune_in_parts(
    options: Any,
    name: str,
    key: dict[str, Any],
    model: Callable[[], Any],
    specs: Sequence[AttackSpec],
    tuning: tuple[Any, Any],
    reporting: tuple[Any, Any],
    *,
    share: dict[str, str] | None = None,
    only: Sequence[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run :func:`tune_and_report` one column at a time, each column a cached part.

    Every column (with the columns that reuse its settings, ``share``) is a part
    of the model's results (:func:`._common.per_model` with ``part``): computed
    once, written to the output folder, and read back by later runs or computed
    by another process meanwhile.

    Parameters
    ----------
    options : ReproduceOptions
        The run.
    name : str
        Zoo model.
    key : dict
        The model's cache key.
    model : callable
        ``model() -> torch.nn.Module`` (called only if a part is computed).
    specs : sequence of AttackSpec
        The columns.
    tuning, reporting : (x, y)
        The two parts of the digits.
    share : dict, optional
        As in :func:`tune_and_report`.
    only : sequence of str, optional
        Compute only these parts (named by their first column).

    Returns
    -------
    dict
        Part → payload ``{"defaults", "tuned", "records", "chosen", "run"}``
        (only the parts in ``only`` when it is given).
    """
    share = share or {}
    groups: dict[str, list[AttackSpec]] = {}
    for spec in specs:
        groups.setdefault(share.get(spec.column, spec.column), []).append(spec)

    def compute(group: list[AttackSpec]) -> dict[str, Any]:
        defaults, tuned, records, chosen = tune_and_report(
            model(), name, group, tuning, reporting, share=share
        )
        return {
            "defaults": defaults,
            "tuned": tuned,
            "records": [r.__dict__ for r in records.values()],
            "chosen": chosen,
        }

    return {
        part: per_model(options, name, key, lambda g=group: compute(g), part=part)
        for part, group in groups.items()
        if only is None or part in only
    }


#: The part of a model's results that holds its clean count, its baseline cascade and
#: its masking diagnosis (the other parts are the tuned columns).
BASELINE_PART = "baseline"


def model_parts(
    options: Any,
    name: str,
    key: dict[str, Any],
    specs: Sequence[AttackSpec],
    baseline: Callable[[Any], dict[str, Any]],
    tuning: tuple[Any, Any],
    reporting: tuple[Any, Any],
    *,
    share: dict[str, str] | None = None,
    only: Sequence[str] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Compute (or read back) one model's tuned columns and its :data:`BASELINE_PART`.

    Each part is cached on its own (:func:`._common.per_model`), so separate
    processes may compute the parts of one model in parallel; the model is loaded
    only if some part is computed here.

    Parameters
    ----------
    options : ReproduceOptions
        The run.
    name : str
        Zoo model.
    key : dict
        The model's cache key.
    specs : sequence of AttackSpec
        The tuned columns.
    baseline : callable
        ``baseline(model) -> dict`` with at least a ``"clean"`` count: the
        baseline part's payload.
    tuning, reporting : (x, y)
        The two parts of the digits.
    share, only
        As in :func:`tune_in_parts`; ``only`` may also name :data:`BASELINE_PART`.

    Returns
    -------
    (dict, dict) or None
        The merged columns (:func:`merge_parts`, with the baseline part's run
        added to ``part_runs``) and the baseline part's payload; ``None`` when
        ``only`` named a subset of the parts.
    """
    from ..pretrained import load_pretrained

    loaded: list[Any] = []

    def model() -> Any:
        if not loaded:
            loaded.append(load_pretrained(name, device=options.device))
        return loaded[0]

    parts = tune_in_parts(
        options, name, key, model, specs, tuning, reporting, share=share, only=only
    )
    if only is None or BASELINE_PART in only:
        base = per_model(options, name, key, lambda: baseline(model()), part=BASELINE_PART)
    if only is not None:
        return None
    payload = merge_parts(parts)
    payload["part_runs"][BASELINE_PART] = base["run"]
    return payload, base


def merge_parts(parts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Merge the payloads of :func:`tune_in_parts` into one model's counts and settings.

    Returns ``{"defaults", "tuned", "records", "chosen", "part_runs"}`` (the
    ``part_runs`` let :func:`._common.per_model` add up the parts' costs).
    """
    merged: dict[str, Any] = {
        "defaults": {},
        "tuned": {},
        "records": [],
        "chosen": {},
        "part_runs": {},
    }
    for part, payload in parts.items():
        merged["defaults"].update(payload["defaults"])
        merged["tuned"].update(payload["tuned"])
        merged["records"].extend(payload["records"])
        merged["chosen"].update(payload["chosen"])
        merged["part_runs"][part] = payload["run"]
    return merged


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def tuning_markdown(records: Sequence[TuningRecord]) -> str:
    """Return a markdown table: per model and attack, each knob's grid with its tuning accuracy."""
    lines = [
        "| model | attack | knob: value → tuning accuracy (%) | authors' defaults | chosen |",
        "|---|---|---|---|---|",
    ]
    for r in records:
        sweeps = "<br>".join(
            f"{knob}: " + ", ".join(f"{_fmt(v)} → {100 * c / r.total:.0f}" for v, c in sweep)
            for knob, sweep in r.sweeps.items()
        )
        default = ", ".join(f"{k}={_fmt(v)}" for k, v in r.default.items())
        changed = r.changed()
        chosen = ", ".join(f"{k}={_fmt(v)}" for k, v in changed.items()) or "the defaults"
        lines.append(
            f"| {r.model} | {r.attack} | {sweeps} | {default} "
            f"({100 * r.default_correct / r.total:.0f} %) | {chosen} "
            f"({100 * r.chosen_correct / r.total:.0f} %) |"
        )
    return "\n".join(lines)


def tuned_table_data(
    *,
    default_rows: dict[str, dict[str, int]],
    tuned_rows: dict[str, dict[str, int]],
    chosen: dict[str, Any],
    total: int,
    tuning_total: int,
    size: dict[str, Any],
    seconds: float,
    runs: dict[str, dict[str, Any]],
    claims: Sequence[Any],
    masking: dict[str, Any],
    records: Sequence[TuningRecord],
) -> dict[str, Any]:
    """Return the ``data`` of a table tuned on the split (one layout for every such table).

    ``counts`` repeats ``tuned_counts``: the table's headline numbers are the tuned ones.
    ``seconds`` is this run's wall time; ``runs`` holds each model's CPU and wall
    seconds (also when read back from an earlier run, see :func:`._common.per_model`).
    """
    return {
        "default_counts": default_rows,
        "tuned_counts": tuned_rows,
        "counts": tuned_rows,
        "chosen": chosen,
        "total": total,
        "tuning_total": tuning_total,
        "sizes": size,
        "seconds": seconds,
        "cpu_seconds": sum(r["cpu_seconds"] for r in runs.values()),
        "runs": runs,
        "claims": [c.summary() for c in claims],
        "masking": masking,
        "tuning": [r.__dict__ for r in records],
    }
