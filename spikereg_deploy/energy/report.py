"""Build, render and write the energy report (JSON, CSV, Markdown, PNG) from a simulation report and optional
mapping document."""
from __future__ import annotations

import csv
import io
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..atomic import atomic_file, atomic_folder, json_text
from ..errors import SpikeRegError, read_json_object
from ..network import NetworkSpec
from ..report_schema import validate_simulation_report
from .loihi import (
    MAPPING_COUNTS,
    EnergyTable,
    OperationCount,
    counts_from_report,
    describe_total,
    format_uj,
    loihi_energy,
)
from .ratios import paper_check, ratio_variants
from .table import E_AC_45NM, E_MAC_45NM, layer_rows, proxy_energy

ENERGY_FORMAT = "spikereg-energy-report"
ENERGY_VERSION = 2  # 2: one Loihi model shared with mapping.json ("loihi" holds counts, energy terms, total)
OUTPUT_FILES = ("energy.json", "energy.csv", "energy.md", "synops.png", "spike_rates.png", "energy_split.png")
SIM_FORMAT, SIM_VERSION = "spikereg-simulation-report", 1


def check_simulation_format(data: dict[str, Any], where: str | Path, complete: bool = False) -> None:
    """Refuse anything but a `spikereg-simulate` report of a version this tool reads, with valid fields (all of
    them when `complete`: see `validate_simulation_report`)."""
    if data.get("format") != SIM_FORMAT:
        raise SpikeRegError(f"not a {SIM_FORMAT} file", where)
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise SpikeRegError(f"report field 'version' must be a whole number, got {version!r}", where)
    if version > SIM_VERSION:
        raise SpikeRegError(f"report format version {data.get('version')!r} is newer than this tool reads "
                            f"({SIM_VERSION})", where)
    validate_simulation_report(data, where, complete)


def load_simulation_report(path: str | Path, complete: bool = False) -> dict[str, Any]:
    """A report file, its fields checked before any is used (`complete`: all of them, for the energy report, which
    prices every count; the mapper's traffic needs only names, neurons and rates)."""
    p = Path(path)
    data = read_json_object(p, "report")
    check_simulation_format(data, p, complete)
    for key in ("network", "input_shape", "time_steps", "layers"):
        if key not in data:
            raise SpikeRegError(f"report lacks {key!r}", p)
    return data


def check_model_fingerprint(report: dict[str, Any], spec: NetworkSpec, where: str | Path) -> None:
    """Counts and rates belong to one model: the same architecture is not enough (thresholds, T and the readout
    scale change every spike), so a report must carry this spec's model fingerprint."""
    network = report.get("network") or {}
    fp, model_fp = network.get("fingerprint"), network.get("model_fingerprint")
    if fp != spec.architecture_fingerprint():
        raise SpikeRegError(f"report is from another network (fingerprint {fp}, expected "
                            f"{spec.architecture_fingerprint()})", where)
    if model_fp is None:
        raise SpikeRegError("report has no model_fingerprint (written by an older spikereg-simulate): run the "
                            "simulation again", where)
    if model_fp != spec.model_fingerprint():
        raise SpikeRegError(f"report is from another model of this network (model fingerprint {model_fp}, expected "
                            f"{spec.model_fingerprint()}: neurons, T or readout scale differ)", where)


def check_report_matches(report: dict[str, Any], spec: NetworkSpec, path: str | Path) -> None:
    """A report from another network, or another model of it, cannot be costed against this one."""
    check_model_fingerprint(report, spec, path)
    names = [row.get("name") for row in report["layers"]]
    if names != [layer.name for layer in spec.layers[1:]]:
        raise SpikeRegError("report layers do not match the network's layers", path)
    if report["time_steps"] != spec.time_steps:
        raise SpikeRegError(f"report T={report['time_steps']} differs from the network's T={spec.time_steps}", path)


def check_mapping_matches(mapping: dict[str, Any], report: dict[str, Any], where: str | Path) -> None:
    """A mapping of another network or another input size cannot lend its packets and hops to this report."""
    fp = (mapping.get("network") or {}).get("fingerprint")
    if fp != report["network"]["fingerprint"]:
        raise SpikeRegError(f"mapping is for another network (fingerprint {fp}, report has "
                            f"{report['network']['fingerprint']})", where)
    if list(mapping.get("input_shape", [])) != list(report["input_shape"]):
        raise SpikeRegError(f"mapping is for input {mapping.get('input_shape')}, report for {report['input_shape']}",
                            where)


def loihi_counts(report: dict[str, Any], spec: NetworkSpec, mapping: dict[str, Any] | None = None
                 ) -> dict[str, OperationCount]:
    """The report's measured counts; with a mapping, its packets and hops (the placement's) replace the
    one-packet-per-spike count, exactly the counts the mapping report prices for the same run."""
    counts = counts_from_report(report, spec)
    if mapping is not None:
        mapped = (mapping.get("energy") or {}).get("counts") or {}
        missing = [key for key in MAPPING_COUNTS if key not in mapped]
        if missing:
            raise SpikeRegError(f"mapping's energy counts lack {', '.join(missing)}")
        counts.update({key: OperationCount.from_dict(mapped[key]) for key in MAPPING_COUNTS})
    return counts


def build_energy_report(report: dict[str, Any], spec: NetworkSpec, profile: EnergyTable,
                        mapping: dict[str, Any] | None = None) -> dict[str, Any]:
    """The energy report document; `mapping` is a mapping.json document already checked against the report."""
    rows = layer_rows(report, spec)
    t = int(report["time_steps"])
    loihi = loihi_energy(loihi_counts(report, spec, mapping), profile, t, spec.pipeline_depth)
    loihi["hops_from"] = "mapping (projected placement)" if mapping is not None else "no mapping given"
    energy = {
        "format": ENERGY_FORMAT,
        "version": ENERGY_VERSION,
        "network": report["network"],
        "input_shape": report["input_shape"],
        "time_steps": t,
        "engine": report.get("engine"),
        "layers": [asdict(r) for r in rows],
        "proxy_45nm": proxy_energy(rows),
        "ratio_variants": ratio_variants(rows, t),
        "paper_check": paper_check(t),
        "loihi": loihi,
        "units": {
            "ann_macs": "multiply-accumulates of the dense ANN per inference (exact, from the network description)",
            "input_spikes": "spikes arriving over T steps (measured)",
            "input_rate": "spikes per presynaptic neuron per step (measured)",
            "synops_measured": "synaptic events over T steps: spikes x exact fan-out (measured)",
            "graded_synops_measured": "graded synaptic events over T steps: graded spikes x exact fan-out, a weight "
                                      "x payload multiply-accumulate each (measured)",
            "payload_bits": "bits per event the layer's neurons send (1: binary spikes)",
            "synops_projected": "input_rate x ANN MACs x T (projected: the usual proxy)",
            "analog_macs": "MACs of the analog first layer over T steps (measured)",
            "energy": "pJ per inference (projected from counts x per-op constants)",
        },
    }
    # the fields spikereg-evaluate and the frontier benchmark report for a model, here for this one inference
    energy["summary"] = {"spike_rate": report["totals"]["spike_rate"], **summary_fields(energy)}
    return energy


def to_csv(energy: dict[str, Any]) -> str:
    buf = io.StringIO()
    fields = list(energy["layers"][0].keys())
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    for row in energy["layers"]:
        writer.writerow(row)
    return buf.getvalue()


def _fmt(x: float | int | None, digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, int):
        return f"{x:,}"
    return f"{x:.{digits}g}"


def to_markdown(energy: dict[str, Any]) -> str:
    t = energy["time_steps"]
    lines = [f"# Energy report ({energy['engine']} run, T={t}, input {'x'.join(map(str, energy['input_shape']))})",
             "", "Per layer. SynOps measured = counted in the run; projected = input rate x ANN MACs x T.", "",
             "| layer | neurons | payload bits | ANN MACs (exact) | input events (measured) | input rate (measured) | "
             "SynOps measured | graded events measured | events projected | measured/projected | "
             "analog MACs (measured) | neuron updates |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in energy["layers"]:
        lines.append(f"| {r['name']} | {r['neurons']:,} | {_fmt(r['payload_bits'])} | {r['ann_macs']:,} | "
                     f"{r['input_spikes']:,} | {_fmt(r['input_rate'])} | {r['synops_measured']:,} | "
                     f"{r['graded_synops_measured']:,} | {_fmt(r['synops_projected'])} | "
                     f"{_fmt(r['measured_over_projected'])} | {r['analog_macs']:,} | {r['neuron_updates']:,} |")
    p = energy["proxy_45nm"]
    lines += ["", "## 45 nm proxy (projected energy from measured counts)", "",
              f"- formula: {p['formula']}",
              f"- E_MAC = {E_MAC_45NM.value} pJ ({E_MAC_45NM.source})",
              f"- E_AC = {E_AC_45NM.value} pJ ({E_AC_45NM.source})",
              f"- ANN: {p['ann_macs']:,} MACs -> {p['ann_energy_pJ'] / 1e6:.3f} uJ per inference",
              f"- SNN: {p['snn_synops_measured']:,} SynOps + {p['snn_graded_synops_measured']:,} graded events + "
              f"{p['snn_analog_macs_measured']:,} analog MACs -> {p['snn_energy_pJ'] / 1e6:.3f} uJ per inference "
              f"(graded events priced as {p['event_cost_model']})",
              f"- E_graded int_mac for payloads wider than 8 bits = {p['constants']['E_graded_int_mac_wide']['value']} "
              f"pJ ({p['constants']['E_graded_int_mac_wide']['source']})",
              *[f"- E_graded {name} = {m['E_graded']['value']} pJ ({m['E_graded']['source']}): ratio "
                f"{_fmt(m['ratio_ann_over_snn'])}x" for name, m in p["graded_event_cost_models"].items()],
              "", "## ANN/SNN energy ratio, every way it is computed", "",
              "| variant | how | formula | T | rate | weighting | SynOps/MAC | ratio |",
              "|---|---|---|---:|---:|---|---:|---:|"]
    for v in energy["ratio_variants"]:
        lines.append(f"| {v['name']} | {v['how']} | {v['formula']} | {v['T']} | {_fmt(v['rate'])} | {v['weighting']} |"
                     f" {_fmt(v['synops_per_mac'])} | {_fmt(v['ratio'])}x |")
    pc = energy["paper_check"]
    lines += ["", f"Paper: {pc['paper_ratio']}x at {100 * pc['paper_mean_rate']:.1f} % mean rate. With the public "
              f"formula the paper's rate gives {pc['public_formula_with_paper_rate']:.1f}x at T={pc['T']}; "
              f"{pc['paper_ratio']}x needs SynOps/MAC = {pc['synops_per_mac_needed_for_paper_ratio']:.3f}.", ""]
    lo = energy["loihi"]
    lines += [f"## Loihi per-operation model (cost model {lo['cost_model']}, profile {lo['profile']}, projected "
              "from measured counts)", "", "| term | count | pJ per op | energy (uJ) | source |",
              "|---|---:|---:|---:|---|"]
    for name, v in lo["energy"].items():
        lines.append(f"| {name} | {_fmt(v['count'], 6)} | {v['pJ_per_op']} | {format_uj(v['pJ'] / 1e6)} | "
                     f"{v['source']} |")
    lines += [f"| **total** | | | **{format_uj(lo['total_uJ'])}** | hops: {lo['hops_from']} |", "",
              "Not costed: " + "; ".join(lo["not_costed"]) + "."]
    return "\n".join(lines) + "\n"


def plot_energy(energy: dict[str, Any], outdir: Path) -> list[Path]:
    """PNG plots: SynOps measured vs projected, spike rate per layer, energy split by operation kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = energy["layers"]
    names = [r["name"] for r in rows]
    paths = []
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(names)), 3.8))
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], [r["synops_measured"] for r in rows], width=0.4, label="measured (counted)")
    ax.bar([i + 0.2 for i in x], [r["synops_projected"] or 0 for r in rows], width=0.4,
           label="projected (rate x MACs x T)")
    ax.set_yscale("log")
    ax.set_xticks(list(x), names, rotation=45)
    ax.set_ylabel("SynOps per inference (events)")
    ax.legend()
    fig.tight_layout()
    paths.append(_save(fig, outdir / "synops.png"))
    spiking = [r for r in rows if r["output_rate"] is not None]
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(spiking)), 3.4))
    ax.bar([r["name"] for r in spiking], [100 * r["output_rate"] for r in spiking], color="#3a7bd5")
    ax.set_ylabel("spike rate (% per neuron per step, measured)")
    ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    paths.append(_save(fig, outdir / "spike_rates.png"))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    proxy = energy["proxy_45nm"]
    graded_pj = (proxy["snn_energy_pJ"] - proxy["snn_synops_measured"] * E_AC_45NM.value
                 - proxy["snn_analog_macs_measured"] * E_MAC_45NM.value)  # the graded events' share
    axes[0].bar(["ANN (MACs)", "SNN (SynOps)", f"SNN (graded, {proxy['event_cost_model']})", "SNN (analog MACs)"],
                [proxy["ann_energy_pJ"] / 1e6, proxy["snn_synops_measured"] * E_AC_45NM.value / 1e6,
                 graded_pj / 1e6,
                 proxy["snn_analog_macs_measured"] * E_MAC_45NM.value / 1e6],
                color=["#888", "#3a7bd5", "#8a3ad5", "#d58a3a"])
    axes[0].set_ylabel("uJ per inference (45 nm proxy)")
    axes[0].tick_params(axis="x", rotation=20)
    parts = {name: v["pJ"] for name, v in energy["loihi"]["energy"].items()}
    axes[1].bar(list(parts), [v / 1e6 for v in parts.values()], color="#3ad58a")
    axes[1].set_ylabel(f"uJ per inference (Loihi model, {energy['loihi']['profile']})")
    axes[1].tick_params(axis="x", rotation=20)
    fig.tight_layout()
    paths.append(_save(fig, outdir / "energy_split.png"))
    return paths


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    with atomic_file(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def summary_fields(energy: dict[str, Any]) -> dict[str, Any]:
    """The energy-at-accuracy fields (`accuracy.ENERGY_FIELDS` but the rate) of one energy report."""
    proxy = energy["proxy_45nm"]
    return {"synops_measured": proxy["snn_synops_measured"], "graded_synops": proxy["snn_graded_synops_measured"],
            "analog_macs": proxy["snn_analog_macs_measured"],
            "ann_macs": proxy["ann_macs"], "ratio_measured_45nm": proxy["ratio_ann_over_snn"],
            "ratio_fp32_graded_bound_45nm": proxy["ratio_fp32_graded_bound"],
            "event_cost_model": proxy["event_cost_model"],
            "loihi_energy_uj": energy["loihi"]["total_uJ"]}


def format_summary(energy: dict[str, Any]) -> str:
    p = energy["proxy_45nm"]
    lines = [f"ANN MACs (exact): {p['ann_macs']:,}; SNN SynOps (measured): {p['snn_synops_measured']:,}; graded "
             f"synaptic events (measured): {p['snn_graded_synops_measured']:,}; analog-input MACs (measured): "
             f"{p['snn_analog_macs_measured']:,}"]
    if p["snn_graded_synops_measured"]:
        lines.append(f"  graded events as {p['event_cost_model']}: {p['ratio_ann_over_snn']:.2f}x; as fp32 MACs (upper "
                     f"bound): {p['ratio_fp32_graded_bound']:.2f}x (45 nm proxy, measured counts)")
    for v in energy["ratio_variants"]:
        lines.append(f"  {v['ratio']:.2f}x  [{v['how']}] {v['name']}: {v['formula']} (T={v['T']})")
    pc = energy["paper_check"]
    lines.append(f"  paper claims {pc['paper_ratio']}x (projected); its rate under the public formula gives "
                 f"{pc['public_formula_with_paper_rate']:.1f}x")
    lines.append(f"Loihi energy: {describe_total(energy['loihi'])}")
    return "\n".join(lines)


def write_energy_outputs(energy: dict[str, Any], output: str | Path) -> list[Path]:
    """energy.{json,csv,md} and the three PNGs into `output`: all six, or none if anything fails."""
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise SpikeRegError("output exists and is not a folder", out)
    with atomic_folder(out) as staging:  # the old complete folder or the new one, never a mix
        (staging / "energy.json").write_text(json_text(energy))
        (staging / "energy.csv").write_text(to_csv(energy))
        (staging / "energy.md").write_text(to_markdown(energy))
        plot_energy(energy, staging)
    return [out / name for name in OUTPUT_FILES]
