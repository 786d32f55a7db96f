"""The energy of an accuracy: what a model's evaluated pairs cost, from the events counted while it registered them.

`spikereg-evaluate`, `spikereg-energy` and the frontier benchmark report these same fields, so a Dice figure and the
energy ratio next to it always come from the same runs. Each pair's counts become a simulation report
(`simulation_report.py`) priced by `build_energy_report`: the 45 nm proxy from measured counts, and Loihi's per-op
energies without a mapping (one packet per spike, hops not costed). The means are per inference over the pairs.
"""
from __future__ import annotations

from typing import Any

from ..network import NetworkSpec
from ..predict import SpikeTally
from ..simulation_report import build_simulation_report
from .loihi import EnergyTable
from .report import build_energy_report, summary_fields

#: The fields, in the order every report prints them.
ENERGY_FIELDS = ("spike_rate", "synops_measured", "graded_synops", "analog_macs", "ann_macs", "ratio_measured_45nm",
                 "ratio_fp32_graded_bound_45nm", "event_cost_model", "loihi_energy_uj")

UNITS = {
    "spike_rate": "spikes per spiking neuron per time step, over all pairs (measured)",
    "synops_measured": "synaptic events per inference, spikes x exact fan-out, mean over pairs (measured)",
    "analog_macs": "multiply-accumulates per inference of the analog input, real taps; T times, or once with input "
                   "as bias (measured)",
    "ann_macs": "multiply-accumulates per inference of the dense ANN (exact, from the network description)",
    "graded_synops": "graded synaptic events per inference, graded spikes x exact fan-out (a weight x payload "
                     "multiply-accumulate each), mean over pairs (measured)",
    "ratio_measured_45nm": "E_ANN / E_SNN per inference, 45 nm proxy (Horowitz, ISSCC 2014: MAC 4.6 pJ, add "
                           "0.9 pJ) on measured counts: ANN MACs x E_MAC / (SynOps x E_AC + graded events x E_graded "
                           "+ analog MACs x E_MAC), graded events under `event_cost_model`",
    "ratio_fp32_graded_bound_45nm": "the same ratio with every graded event priced as a 32-bit float MAC (4.6 pJ): "
                                    "the bound below which the graded events cannot push it",
    "event_cost_model": "how ratio_measured_45nm prices a graded event: int_mac = integer multiply (8-bit, 0.2 pJ, "
                        "for payloads of up to 8 bits; 32-bit, 3.1 pJ, for wider ones) + the SynOp's add (0.9 pJ), "
                        "Horowitz 2014",
    "loihi_energy_uj": "uJ per inference (projected from measured counts x per-op energies of the profile; no "
                       "mapping: one packet per spike, hops not costed)",
}


def energy_at_accuracy(tally: SpikeTally, spec: NetworkSpec, profile: EnergyTable, engine: str) -> dict[str, Any]:
    """Mean per-inference energy fields over every prediction the tally recorded (`engine`: what counted them)."""
    if not tally.inferences:
        raise ValueError("no prediction recorded: nothing to price")
    rows = []
    ann_pj = snn_pj = snn_fp32_pj = 0.0
    for shape, counts in tally.inferences:
        report = build_simulation_report(spec, counts, shape, spec.time_steps, spec.time_steps, engine, "fixed_pt",
                                         0.0, None)
        energy = build_energy_report(report, spec, profile)
        rows.append(summary_fields(energy))
        ann_pj += energy["proxy_45nm"]["ann_energy_pJ"]
        snn_pj += energy["proxy_45nm"]["snn_energy_pJ"]
        snn_fp32_pj += energy["proxy_45nm"]["graded_event_cost_models"]["fp32_mac"]["snn_energy_pJ"]
    n = len(rows)
    mean = {key: sum(r[key] for r in rows) / n
            for key in ("synops_measured", "graded_synops", "analog_macs", "loihi_energy_uj")}
    mean["ann_macs"] = sum(r["ann_macs"] for r in rows) // n  # one size per source: the same integer every pair
    return {"spike_rate": tally.rate(), **mean, "ratio_measured_45nm": ann_pj / snn_pj if snn_pj else None,
            "ratio_fp32_graded_bound_45nm": ann_pj / snn_fp32_pj if snn_fp32_pj else None,
            "event_cost_model": rows[0]["event_cost_model"],
            "inferences": n, "counted_by": engine, "profile": profile.name, "units": UNITS}


def describe(fields: dict[str, Any]) -> list[str]:
    """Lines for a console: each number with its unit and how it was obtained."""
    ratio = fields["ratio_measured_45nm"]
    lines = [
        f"  spike rate {100 * fields['spike_rate']:.2f} % (measured), {fields['synops_measured']:,.0f} SynOps + "
        f"{fields.get('graded_synops', 0):,.0f} graded events + {fields['analog_macs']:,.0f} input MACs per "
        f"inference (measured) vs {fields['ann_macs']:,.0f} ANN MACs (exact)",
        f"  energy ratio ANN/SNN {ratio:.2f}x (measured counts, 45 nm proxy); Loihi "
        f"{fields['loihi_energy_uj']:,.1f} uJ per inference (projected, profile {fields['profile']}, no mapping)",
    ]
    if fields.get("graded_synops"):
        lines.append(f"  graded events priced as {fields['event_cost_model']} (45 nm integer MAC); as fp32 MACs, the "
                     f"upper bound, the ratio is {fields['ratio_fp32_graded_bound_45nm']:.2f}x")
    return lines
