"""One Loihi per-operation energy model, used by both the energy report and the mapping report.

A run used to print two Loihi totals because each report priced the counts its own way. There is now one rule,
cost model `loihi_per_op`: counts x the profile's per-operation energies (pJ), term by term.

- synaptic ops: every binary SynOp (spike x exact fan-out) and every graded input op (analog input value x exact
  fan-out, a graded spike on Loihi 2) at `synaptic_op_pj`;
- graded synaptic ops: every graded spike of a multi-threshold layer x exact fan-out (weight x payload) at
  `graded_synaptic_op_pj`, which the profile gives with its source (Loihi 2's is unpublished: the profile says
  what it assumes); a profile without it (Loihi 1 sends binary spikes only) leaves them listed as not costed;
- neuron updates: every compartment update; it is *active* (`neuron_update_active_pj`) when the compartment
  spikes, and for the non-spiking readout always (it integrates its input every step and the host reads its
  state), otherwise inactive (`neuron_update_inactive_pj`);
- spike packets at `spike_within_tile_pj`: one per (spiking neuron, destination core) pair, the way Loihi routes.
  With a mapping they come from its block graph; without one every spike counts as one packet (one destination
  core: the fewest a spike can need);
- router hops east-west / north-south and chip-to-chip crossings of the planned placement at `hop_east_west_pj`,
  `hop_north_south_pj` and `chip_hop_pj`: only with a mapping (without one they are not costed);
- host I/O, with a mapping: input injection (the analog input's values x destination cores, every step) and
  readout output (the readout's values leaving the chip, every step) are counted and listed under `not_costed`,
  since no per-value energy of Loihi's host link is published.

The packet-and-hop terms are the mapping's because they follow how the hardware spends energy; without a mapping
the same formula runs without hops. A count or an energy key that is missing is listed under `not_costed`, never
guessed, so the energy report and the mapping report of one run give the same total.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ..network import NetworkSpec

COST_MODEL = "loihi_per_op"
LABEL = "projected: per-op energies x counts (each count says whether it was measured)"

#: (energy term, profile energy key): the order the terms are priced and printed in.
TERMS: tuple[tuple[str, str], ...] = (
    ("synaptic_ops", "synaptic_op_pj"),
    ("graded_synaptic_ops", "graded_synaptic_op_pj"),
    ("neuron_updates_active", "neuron_update_active_pj"),
    ("neuron_updates_inactive", "neuron_update_inactive_pj"),
    ("spikes_within_tile", "spike_within_tile_pj"),
    ("hops_east_west", "hop_east_west_pj"),
    ("hops_north_south", "hop_north_south_pj"),
    ("chip_links", "chip_hop_pj"),
)
#: Counts only a mapping (placement) can give; the energy report copies them from mapping.json.
MAPPING_COUNTS = ("spike_packets", "router_hops_east_west", "router_hops_north_south", "chip_link_crossings",
                  "host_input_packets", "host_output_values")


class EnergyTable(Protocol):
    """What the model reads from a core profile (`mapping.profiles.CoreProfile`); energy imports no mapping."""

    name: str
    energy_pj: dict[str, float]
    sources: dict[str, str]


@dataclass(frozen=True)
class OperationCount:
    """One count the model prices, with its unit and how it was obtained (measured / projected / planned)."""

    value: float
    unit: str
    how: str

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "unit": self.unit, "how": self.how}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OperationCount:
        return cls(float(data["value"]), str(data["unit"]), str(data["how"]))


def active_updates(spiking: bool, spikes: float, updates: float) -> float:
    """Compartment updates priced as active: the ones in which a neuron spikes; for the readout, all of them."""
    return spikes if spiking else updates


def counts_from_report(report: dict[str, Any], spec: NetworkSpec) -> dict[str, OperationCount]:
    """Measured counts of a `spikereg-simulate` report; packets are spikes (one destination core each)."""
    t = int(report["time_steps"])
    rows = {row["name"]: row for row in report["layers"]}
    synops = graded = graded_spikes = updates = active = spikes = 0
    for layer in spec.layers[1:]:
        row = rows[layer.name]
        synops += row["synops"]
        graded_spikes += row.get("graded_synops", 0)  # reports from before graded neurons have none
        if any(spec.layer(src).kind == "input" for src in layer.inputs):
            graded += row["input_macs"]
        updates += row["neuron_updates"]
        active += active_updates(layer.spiking, row["spikes"], row["neuron_updates"])
        spikes += row["spikes"] if layer.spiking else 0
    return {
        "synaptic_ops": OperationCount(synops, "events per inference",
                                       f"measured: spikes x exact fan-out over T={t} steps"),
        "input_graded_ops": OperationCount(graded, "events per inference", "measured: analog input, every value "
                                           "every step, x exact fan-out (graded spikes)" if spec.input_mode == "analog"
                                           else "measured: input as bias, the first layer's sum once per inference "
                                           "(host, real taps), priced as graded ops (an upper bound: the chip only "
                                           "holds the bias)"),
        "graded_synaptic_ops": OperationCount(graded_spikes, "events per inference", f"measured: graded spikes "
                                              f"(nonzero payloads) x exact fan-out over T={t} steps, a weight x "
                                              "payload multiply each"),
        "neuron_updates": OperationCount(updates, "compartment updates per inference", f"measured: neurons x T={t}"),
        "active_neuron_updates": OperationCount(active, "compartment updates per inference", "measured: updates in "
                                                "which the neuron spikes (readout: every update)"),
        "spike_packets": OperationCount(spikes, "spikes x destination cores per inference",
                                        "measured spikes, one destination core each (no mapping given)"),
    }


def loihi_energy(counts: dict[str, OperationCount], profile: EnergyTable, time_steps: int,
                 pipeline_depth: int) -> dict[str, Any]:
    """Price `counts` with the profile's energy keys: per term pJ, count, pJ per op and source, and the total.

    Per inference means the T model steps; the pipeline's fill (`pipeline_depth` extra steps) and the host's
    input I/O are listed as not costed.
    """
    value = {name: c.value for name, c in counts.items()}
    synaptic = value["synaptic_ops"] + value["input_graded_ops"]
    term_counts: dict[str, float | None] = {
        "synaptic_ops": synaptic,
        "graded_synaptic_ops": value.get("graded_synaptic_ops", 0.0),
        "neuron_updates_active": value["active_neuron_updates"],
        "neuron_updates_inactive": max(value["neuron_updates"] - value["active_neuron_updates"], 0.0),
        "spikes_within_tile": value["spike_packets"],
        "hops_east_west": value.get("router_hops_east_west"),
        "hops_north_south": value.get("router_hops_north_south"),
        "chip_links": value.get("chip_link_crossings"),
    }
    energy: dict[str, dict[str, Any]] = {}
    missing = []
    for name, key in TERMS:
        count = term_counts[name]
        if count is None:
            missing.append(f"{name} (no mapping given)")
        elif name == "graded_synaptic_ops" and not count:
            continue  # nothing graded to price: a binary network needs no graded term (nor the profile's key)
        elif key not in profile.energy_pj:
            missing.append(f"{name} ({key} not in profile {profile.name})")
        else:
            energy[name] = {"pJ": count * profile.energy_pj[key], "count": count,
                            "pJ_per_op": profile.energy_pj[key], "source": profile.sources.get(f"energy.{key}", "")}
    total_pj = sum(v["pJ"] for v in energy.values())
    return {
        "cost_model": COST_MODEL,
        "profile": profile.name,
        "time_steps": time_steps,
        "counts": {k: c.to_dict() for k, c in counts.items()},
        "energy": energy,
        "total_pJ": total_pj,
        "total_uJ": total_pj * 1e-6,
        "label": LABEL,
        "not_costed": missing + [_host_io(value), f"pipeline fill ({pipeline_depth} extra steps)"],
    }


def _host_io(value: dict[str, float]) -> str:
    """The host's I/O, counted where a mapping gives it, never priced (no published energy per value)."""
    if "host_input_packets" not in value:
        return "host input I/O"
    out = value.get("host_output_values")
    readout = f", readout output {out:,.0f} values" if out is not None else ""
    return f"host I/O (input injection {value['host_input_packets']:,.0f} value-core pairs{readout}; counted, no " \
        "published energy per value)"


def format_uj(value: float) -> str:
    """Microjoules as people read them: 4 significant digits, thousands separated, never an exponent above 1e4."""
    return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:.4g}"


def describe_total(loihi: dict[str, Any]) -> str:
    """The one line every tool prints for the Loihi figure: value, 'projected', cost model and profile."""
    hops = "packets and hops from the mapping" if "router_hops_east_west" in loihi["counts"] else "no mapping: " \
        "one packet per spike, hops not costed"
    return (f"{format_uj(loihi['total_uJ'])} uJ per inference (projected, cost model {loihi['cost_model']}, profile "
            f"{loihi['profile']}; {hops})")
