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
E_MULT8_45NM = Constant(0.2, "pJ", "Horowitz, ISSCC 2014: 8-bit integer multiply at 45 nm")

E_MULT32_45NM = Constant(3.1, "pJ", "Horowitz, ISSCC 2014: 32-bit integer multiply at 45 nm")

#: What one graded synaptic event (8-bit weight x payload, accumulated) costs under each model. `int_mac` is the
#: integer multiply-accumulate: an 8-bit multiply for payloads of up to 8 bits (CUBA-MT), a 32-bit one for wider
#: payloads (SDNN's 16-bit messages: the next entry of Horowitz's table, an upper value), plus the very accumulate a
#: binary SynOp pays, so a graded event never costs less than a spike's add. `fp32_mac` prices every graded event
#: as the ANN's own 32-bit float MAC, the bound. The proxy's headline ratio uses `int_mac`, the bound beside it.
GRADED_EVENT_COSTS: dict[str, Constant] = {
    "int_mac": Constant(E_MULT8_45NM.value + E_AC_45NM.value, "pJ", "Horowitz, ISSCC 2014, 45 nm: 8-bit integer "
                        "multiply (0.2 pJ) + the 32-bit float add of a SynOp (0.9 pJ); payloads of up to 8 bits"),
    "fp32_mac": Constant(E_MAC_45NM.value, "pJ", "Horowitz, ISSCC 2014, 45 nm: 32-bit float MAC (3.7 + 0.9 pJ), "
                         "an upper bound"),
}
#: `int_mac` for payloads wider than 8 bits.
E_INT_MAC_WIDE_45NM = Constant(E_MULT32_45NM.value + E_AC_45NM.value, "pJ", "Horowitz, ISSCC 2014, 45 nm: 32-bit "
                               "integer multiply (3.1 pJ) + the SynOp's add (0.9 pJ); payloads of 9-32 bits")
DEFAULT_GRADED_COST = "int_mac"
NARROW_PAYLOAD_BITS = 8


def graded_event_energy(rows: list[LayerEnergyRow], model: str) -> float:
    """pJ of all graded synaptic events under `model`, each layer's priced by the payload width it receives."""
    total = 0.0
    for row in rows:
        cost = GRADED_EVENT_COSTS[model].value
        if model == "int_mac" and (row.graded_input_bits or 0) > NARROW_PAYLOAD_BITS:
            cost = E_INT_MAC_WIDE_45NM.value
        total += row.graded_synops_measured * cost
    return total


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
    graded_synops_measured: int
    payload_bits: int | None
    graded_input_bits: int | None  # widest payload arriving from graded sources (prices its events)
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
        projected = in_rate * macs * t if in_rate is not None else None  # events, binary or graded
        rows.append(LayerEnergyRow(
            name=layer.name, kind=layer.kind, neurons=row["neurons"], ann_macs=macs,
            input_spikes=row["input_spikes"], input_rate=in_rate,
            output_rate=row["spike_rate"], synops_measured=row["synops"],
            graded_synops_measured=row.get("graded_synops", 0), payload_bits=row.get("payload_bits"),
            graded_input_bits=max((e.payload_bits for e in spec.edges_into(layer.name) if e.payload == "graded"),
                                  default=None),
            synops_projected=projected,
            measured_over_projected=((row["synops"] + row.get("graded_synops", 0)) / projected) if projected else None,
            analog_macs=row["input_macs"] if analog else 0, neuron_updates=row["neuron_updates"],
            spikes=row["spikes"],
        ))
    return rows


def proxy_energy(rows: list[LayerEnergyRow], e_mac: Constant = E_MAC_45NM,
                 e_ac: Constant = E_AC_45NM) -> dict[str, Any]:
    """45 nm proxy: the ANN pays a MAC per multiply-accumulate; the SNN an add per binary SynOp, a graded event's
    cost per graded synaptic event (both models of `GRADED_EVENT_COSTS`, each its own ratio), MACs for analog input."""
    ann_macs = sum(r.ann_macs for r in rows)
    synops = sum(r.synops_measured for r in rows)
    graded = sum(r.graded_synops_measured for r in rows)
    analog = sum(r.analog_macs for r in rows)
    e_ann = ann_macs * e_mac.value
    by_model = {}
    for name, cost in GRADED_EVENT_COSTS.items():
        e_snn = synops * e_ac.value + graded_event_energy(rows, name) + analog * e_mac.value
        by_model[name] = {"snn_energy_pJ": e_snn, "ratio_ann_over_snn": e_ann / e_snn if e_snn else None,
                          "E_graded": cost._asdict()}
    chosen = by_model[DEFAULT_GRADED_COST]
    return {
        "ann_macs": ann_macs, "snn_synops_measured": synops, "snn_graded_synops_measured": graded,
        "snn_analog_macs_measured": analog, "ann_energy_pJ": e_ann, "snn_energy_pJ": chosen["snn_energy_pJ"],
        "ratio_ann_over_snn": chosen["ratio_ann_over_snn"], "event_cost_model": DEFAULT_GRADED_COST,
        "ratio_fp32_graded_bound": by_model["fp32_mac"]["ratio_ann_over_snn"],
        "graded_event_cost_models": by_model,
        "formula": "E_ANN = MACs x E_MAC; E_SNN = SynOps_measured x E_AC + graded synaptic events x E_graded "
                   f"({DEFAULT_GRADED_COST}; fp32_mac as the bound) + analog-input MACs x E_MAC",
        "constants": {"E_MAC": e_mac._asdict(), "E_AC": e_ac._asdict(),
                      "E_graded": {k: c._asdict() for k, c in GRADED_EVENT_COSTS.items()},
                      "E_graded_int_mac_wide": E_INT_MAC_WIDE_45NM._asdict()},
    }
