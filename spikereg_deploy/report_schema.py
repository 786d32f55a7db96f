"""What a `report.json` (spikereg-simulation-report v1) and a `mapping.json` must hold before any number is used.

`spikereg-energy` and `spikereg-map --traffic` price what the report says; a negative SynOps count, a NaN (Python's
json reads the invalid `NaN` token without complaint), a spike rate of 1.7, a neuron count of 4096.5 or a report
without totals used to come out as an energy figure with exit 0, or as a TypeError traceback. Each is one line
naming the file and the field (`layers[3].synops`), exit 2.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .errors import SpikeRegError

__all__ = ["LAYER_COUNTS", "TOTAL_COUNTS", "validate_mapping_document", "validate_simulation_report"]

# Per layer: event and size counts (integers >= 0) and the per-step series (lists of them).
LAYER_COUNTS = ("neurons", "spikes", "input_spikes", "synops", "input_macs", "neuron_updates", "fan_in",
                "ann_macs_per_step")
LAYER_SERIES = ("spikes_per_step", "synops_per_step", "graded_synops_per_step")
#: Counts of graded events (multi-threshold neurons), checked where present: reports written before graded
#: neurons existed have none, which means zero.
OPTIONAL_LAYER_COUNTS = ("graded_synops", "payload_sum")
TOTAL_COUNTS = ("spiking_neurons", "spikes", "synops", "input_macs", "neuron_updates")
TOTAL_RATES = ("spike_rate", "mean_layer_spike_rate")


def _fail(field: str, problem: str, where: str | Path, what: str = "report") -> SpikeRegError:
    return SpikeRegError(f"{what} field {field!r} {problem}", where)


def _first_non_finite(value: Any, field: str) -> tuple[str, float] | None:
    if isinstance(value, float) and not math.isfinite(value):
        return field, value
    if isinstance(value, dict):
        items = ((f"{field}.{k}" if field else str(k), v) for k, v in value.items())
    elif isinstance(value, list):
        items = ((f"{field}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for sub_field, sub in items:
        if (found := _first_non_finite(sub, sub_field)) is not None:
            return found
    return None


def _count(row: dict[str, Any], key: str, field: str, where: str | Path) -> int:
    if key not in row:
        raise _fail(field, "is missing", where)
    return _count_value(row[key], field, where)


def _count_value(value: Any, field: str, where: str | Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(field, f"must be a whole number (a count), got {value!r}", where)
    if value < 0:
        raise _fail(field, f"must not be negative, got {value:,}", where)
    return value


def _rate(value: Any, field: str, where: str | Path) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise _fail(field, f"must be a rate in [0, 1] (spikes per neuron per step), got {value!r}", where)
    return float(value)


def validate_simulation_report(data: dict[str, Any], where: str | Path, complete: bool = True) -> None:
    """Types, ranges and consistency of the fields the readers use: finite numbers everywhere, counts whole and
    non-negative, rates in [0, 1], no layer with more spikes than neurons x T. `complete`: every count and the
    totals must be there (a file a user gives); else (a document built in this process, or a test's partial one)
    only the fields present are checked, and each layer's name and neurons."""
    if (found := _first_non_finite(data, "")) is not None:
        raise _fail(found[0], f"is {found[1]} (not a number a count or rate can be)", where)
    t = data.get("time_steps")
    if isinstance(t, bool) or not isinstance(t, int) or t <= 0:
        raise _fail("time_steps", f"must be a positive whole number, got {t!r}", where)
    shape = data.get("input_shape")
    if not (isinstance(shape, list) and len(shape) == 3
            and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape)):
        raise _fail("input_shape", f"must be three positive whole numbers, got {shape!r}", where)
    network = data.get("network")
    if network is not None or complete:
        if not isinstance(network, dict):
            raise _fail("network", f"must be an object (the network's fingerprints), got {network!r}", where)
        for key in ("fingerprint", "model_fingerprint"):
            if network.get(key) is not None and not isinstance(network[key], str):
                raise _fail(f"network.{key}", f"must be a fingerprint string, got {network[key]!r}", where)
    layers = data.get("layers")
    if not isinstance(layers, list) or not layers or not all(isinstance(r, dict) for r in layers):
        raise _fail("layers", "must be a non-empty list of objects", where)
    for i, row in enumerate(layers):
        if not isinstance(row.get("name"), str):
            raise _fail(f"layers[{i}].name", f"must be a layer name, got {row.get('name')!r}", where)
        counts = {key: _count(row, key, f"layers[{i}].{key}", where) for key in LAYER_COUNTS + OPTIONAL_LAYER_COUNTS
                  if (complete and key in LAYER_COUNTS) or key in row or key == "neurons"}
        if counts["neurons"] == 0:
            raise _fail(f"layers[{i}].neurons", "must be at least 1", where)
        if counts.get("spikes", 0) > counts["neurons"] * t:
            raise _fail(f"layers[{i}].spikes", f"{counts['spikes']:,} exceeds neurons x T = "
                        f"{counts['neurons']:,} x {t} (at most one spike per neuron per step)", where)
        if complete and "spike_rate" not in row:
            raise _fail(f"layers[{i}].spike_rate", "is missing", where)
        if row.get("spike_rate") is not None:
            _rate(row["spike_rate"], f"layers[{i}].spike_rate", where)
        for key in LAYER_SERIES:
            series = row.get(key, [])
            if not isinstance(series, list):
                raise _fail(f"layers[{i}].{key}", "must be a list of counts", where)
            for step, value in enumerate(series):
                _count_value(value, f"layers[{i}].{key}[{step}]", where)
    totals = data.get("totals")
    if totals is None and not complete:
        return
    if totals is None:
        raise _fail("totals", "is missing (every spikereg-simulate report has totals)", where)
    if not isinstance(totals, dict):
        raise _fail("totals", f"must be an object, got {totals!r}", where)
    for key in (*TOTAL_COUNTS, "graded_synops"):
        if (complete and key in TOTAL_COUNTS) or key in totals:
            _count(totals, key, f"totals.{key}", where)
    for key in TOTAL_RATES:
        if key in totals:
            _rate(totals[key], f"totals.{key}", where)


def validate_mapping_document(doc: dict[str, Any], where: str | Path, block_columns: int) -> None:
    """The fields of a mapping.json that `spikereg-energy --mapping` and the report renderer read: finite numbers,
    the network's fingerprint, the input shape, a block table of `block_columns` columns, and the energy counts
    (each a finite, non-negative `value` with its `unit` and `how`). A wrong type used to be a traceback."""
    def fail(field: str, problem: str) -> SpikeRegError:
        return _fail(field, problem, where, "mapping")

    if (found := _first_non_finite(doc, "")) is not None:
        raise fail(found[0], f"is {found[1]} (not a number)")
    network = doc.get("network")
    if not isinstance(network, dict) or not isinstance(network.get("fingerprint"), str):
        raise fail("network", f"must be an object with the network's fingerprint, got {network!r}")
    shape = doc.get("input_shape")
    if not (isinstance(shape, list) and len(shape) == 3
            and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape)):
        raise fail("input_shape", f"must be three positive whole numbers, got {shape!r}")
    blocks = doc.get("blocks")
    if not isinstance(blocks, list) or not all(isinstance(r, list) and len(r) == block_columns for r in blocks):
        raise fail("blocks", f"must be a list of rows of {block_columns} values (the block table)")
    energy = doc.get("energy")
    counts = energy.get("counts") if isinstance(energy, dict) else None
    if not isinstance(counts, dict):
        raise fail("energy.counts", "must be an object of operation counts")
    for key, entry in counts.items():
        value = entry.get("value") if isinstance(entry, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise fail(f"energy.counts.{key}.value", f"must be a non-negative number, got {value!r}")
        if not (isinstance(entry.get("unit"), str) and isinstance(entry.get("how"), str)):
            raise fail(f"energy.counts.{key}", "must give its 'unit' and 'how' as text")
