"""The per-layer energy table (measured SynOps against projected ones) and the 45 nm MAC/AC proxy.

Every figure comes from counted events in a simulation report, next to the rate-based projection the literature
uses, so the two can be compared layer by layer (`ratios.py` turns the table into ANN/SNN ratios).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from ..network import NetworkSpec


class Constant(NamedTuple):
    """A per-operation energy, printed with its unit and source wherever it prices a figure."""

    value: float
    unit: str
    source: str


E_MAC_45NM = Constant(4.6, "pJ", "Horowitz, ISSCC 2014: 32-bit float MAC at 45 nm (mult 3.7 + add 0.9)")
E_AC_45NM = Constant(0.9, "pJ", "Horowitz, ISSCC 2014: 32-bit float add at 45 nm (one SynOp)")


@dataclass
class LayerEnergyRow:
    name: str
    kind: str
    neurons: int
    ann_macs: int
    input_spikes: int
    input_rate: float | None
    output_rate: float | None
    synops_measured: int
    synops_projected: float | None
    measured_over_projected: float | None
    analog_macs: int
    neuron_updates: int
    spikes: int


def layer_rows(report: dict[str, Any], spec: NetworkSpec) -> list[LayerEnergyRow]:
    """Per-layer table from a simulation report; projections use rate x MACs x T (the usual proxy)."""
    t = int(report["time_steps"])
    geo = spec.geometry(tuple(report["input_shape"]))
    by_name = {row["name"]: row for row in report["layers"]}
    rows = []
    for layer in spec.layers[1:]:
        row = by_name[layer.name]
        macs = geo[layer.name].macs
        analog = any(spec.layer(s).kind == "input" for s in layer.inputs)
        presyn = sum(geo[s].neurons for s in layer.inputs if spec.layer(s).kind != "input")
        in_rate = row["input_spikes"] / (presyn * t) if presyn else None
        projected = in_rate * macs * t if in_rate is not None else None
        rows.append(LayerEnergyRow(
            name=layer.name, kind=layer.kind, neurons=row["neurons"], ann_macs=macs,
            input_spikes=row["input_spikes"], input_rate=in_rate,
            output_rate=row["spike_rate"], synops_measured=row["synops"], synops_projected=projected,
            measured_over_projected=(row["synops"] / projected) if projected else None,
            analog_macs=row["input_macs"] if analog else 0, neuron_updates=row["neuron_updates"],
            spikes=row["spikes"],
        ))
    return rows


def proxy_energy(rows: list[LayerEnergyRow], e_mac: Constant = E_MAC_45NM,
                 e_ac: Constant = E_AC_45NM) -> dict[str, Any]:
    """45 nm proxy: the ANN pays a MAC per multiply-accumulate, the SNN an add per SynOp plus MACs for analog input."""
    ann_macs = sum(r.ann_macs for r in rows)
    synops = sum(r.synops_measured for r in rows)
    analog = sum(r.analog_macs for r in rows)
    e_ann = ann_macs * e_mac.value
    e_snn = synops * e_ac.value + analog * e_mac.value
    return {
        "ann_macs": ann_macs, "snn_synops_measured": synops, "snn_analog_macs_measured": analog,
        "ann_energy_pJ": e_ann, "snn_energy_pJ": e_snn,
        "ratio_ann_over_snn": e_ann / e_snn if e_snn else None,
        "formula": "E_ANN = MACs x E_MAC; E_SNN = SynOps_measured x E_AC + analog-input MACs x E_MAC",
        "constants": {"E_MAC": e_mac._asdict(), "E_AC": e_ac._asdict()},
    }
