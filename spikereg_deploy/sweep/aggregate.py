"""Aggregates computed from the results database alone, so a resumed, a parallel and a serial run report the same.

Rows are taken in pair-index order whichever worker finished first; the energy of an accuracy is priced from the
layer counts stored with each pair (`energy.accuracy.energy_at_accuracy`, the same function a one-process
evaluation uses).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..counting import LayerCounts
from ..evaluation import aggregate, paired_comparison
from ..network import NetworkSpec
from ..predict import SpikeTally
from .results_db import PairResult, ok_rows

__all__ = ["model_summary", "tally_from_results", "paired", "failures"]


def tally_from_results(results: Sequence[PairResult], spec: NetworkSpec) -> SpikeTally:
    """The spike tally of the finished pairs, as if one predictor had run them all in index order."""
    tally = SpikeTally()
    for r in results:
        if r.status == "ok" and r.counts is not None:
            tally.record(spec, r.input_shape, {name: LayerCounts(**c) for name, c in r.counts.items()})
    return tally


def failures(results: Sequence[PairResult]) -> list[dict[str, Any]]:
    return [{"pair": r.pair, "index": r.pair_index, "error": r.error} for r in results if r.status == "failed"]


def model_summary(results: Sequence[PairResult], spec: NetworkSpec, engine: str, profile: Any) -> dict[str, Any]:
    """Aggregate metrics, the energy of that accuracy (None without counted events), rows and failures."""
    from ..energy.accuracy import energy_at_accuracy

    rows = ok_rows(results)
    tally = tally_from_results(results, spec)
    energy = energy_at_accuracy(tally, spec, profile, engine) if tally.inferences else None
    return {"pairs": len(rows), "aggregate": aggregate(rows), "energy": energy, "per_pair": rows,
            "failed": failures(results)}


def paired(rows_a: Sequence[dict[str, Any]], rows_b: Sequence[dict[str, Any]], metrics: Sequence[str]
           ) -> dict[str, Any]:
    """Paired tests over the pairs both models finished (matched by pair name, in the first model's order)."""
    by_name = {r["pair"]: r for r in rows_b}
    common = [r for r in rows_a if r["pair"] in by_name]
    return {m: paired_comparison(common, [by_name[r["pair"]] for r in common], m) for m in metrics}
