"""Tables, notes and JSON clean-up for benchmarks/bench_simulators.py's output (the keys are its JSON's)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def _mem(n: int | None) -> str:
    return "-" if n is None else fmt_bytes(n)


def _yes(flag: bool | None) -> str:
    return "-" if flag is None else ("yes" if flag else "NO")


NOTES = [
    "events/s = SynOps measured over the T model steps (each arriving spike x the synapses it actually reaches) / "
    "wall time of the T+depth Lava steps (compile and runtime start-up excluded, timed apart by wrapping "
    "AbstractProcess.create_runtime); both graphs step one RunSteps(1) call per step.",
    "stock graph: lava-nc Sparse (binary), Sparse graded (num_message_bits=24, weight_exp=-8) for the analog input, "
    "DelaySparse for skips, LIF(du=iDecay-1, dv=vDecay, vth=vThMant, bias_exp=6), io RingBuffer source and sink; "
    "stock processes count no events, so its events/s use the SynOps of the same spikes (valid where it is exact).",
    "stock 'exact': per-neuron spike counts over the model window of every layer and the readout sum (hence the "
    "displacement) equal the reference engine's integers; ours is tested spike for spike in tests/test_lava.py and "
    "here checked on readout, spikes and SynOps per layer.",
    "the stock run carries one extra sink per LIF for that check (a file writer), which adds a little to its time.",
    "peak memory = largest sampled PSS of this process tree (Lava's forked models included) above the value "
    "before the run. Timed runs carry no dense sampler: ours is measured in one extra untimed run; the stock run "
    "samples sparsely (~10 % of one core), and a stock run stepping under 30 s is repeated untimed for memory.",
    "the machine is shared: the load average before and after is recorded; timings are best of repeats where "
    "affordable (the stock graph runs once).",
    "part 2: reference = IntegerNetwork.run (T steps with event counting); ANN = T forwards of float32 "
    "Conv3d/ConvTranspose3d + ReLU of the same graph, no grad; both torch.set_num_threads(2), best of repeats.",
    "part 3: nothing runs for 10 minutes; time = a + b*n^3 fitted to the measured whole-run times, memory from "
    "the estimators named per row; n is rounded down to a size the network accepts.",
]


def format_tables(result: dict[str, Any]) -> str:
    """The benchmark's three tables for people, from its JSON result."""
    events_min, slowdown_max = result["targets"]["events_ratio_min"], result["targets"]["reference_slowdown_max"]
    lines = [f"== 1. synaptic events/s: our Lava graph vs lava-nc stock Sparse (Loihi2SimCfg fixed_pt, "
             f"{result['network']['run_steps']} steps) =="]
    head = (f"{'n':>4}  {'engine':<18} {'SynOps':>10} {'step s':>8} {'compile s':>9} {'build s':>8} "
            f"{'total s':>8} {'events/s':>10} {'peak mem':>10}  exact")
    lines.append(head)
    for row in result["part1_lava_events"]:
        for key in ("ours", "stock"):
            t = row[key]
            if t is None:
                continue
            lines.append(f"{row['n']:>4}  {t['engine']:<18} {t['synops']:>10.3e} {t['step_s']:>8.2f} "
                         f"{t['compile_s']:>9.2f} {t['build_s']:>8.2f} {t['total_s']:>8.2f} "
                         f"{t['events_per_s']:>10.3e} {_mem(t['peak_bytes']):>10}  {_yes(t['exact'])}")
        if row.get("part3_only"):
            continue
        if row["stock"] is not None:
            ratio = row["ratio_events_per_s"]
            verdict = "met" if ratio >= events_min else "NOT met"
            lines.append(f"      ratio ours/stock events/s = {ratio:.1f}x (target >= {events_min:g}x: "
                         f"{verdict}); stock reproduces our spikes and displacement: "
                         f"{_yes(row['stock']['exact'])}; stock synapses {row['stock']['details']['nnz']:.3e}")
        else:
            lines.append(f"      stock Sparse skipped: {row['stock_skipped']} ({row['stock_nnz']:.3e} synapses, "
                         f"CSR {fmt_bytes(row['stock_csr_bytes'])} per copy)")
    lines.append("")
    lines.append("== 2. reference engine (IntegerNetwork.run) vs dense float32 ANN x T, 2 threads ==")
    lines.append(f"{'n':>4}  {'reference s':>11} {'ANN s':>8} {'ref/ANN':>8}  {'SynOps':>10} {'ANN MACs':>10}  "
                 f"target <= {slowdown_max:g}x")
    for t in result["part2_reference_vs_ann"]:
        verdict = "met" if t["slowdown"] <= slowdown_max else "NOT met"
        lines.append(f"{t['n']:>4}  {t['reference_s']:>11.3f} {t['ann_s']:>8.3f} {t['slowdown']:>7.2f}x  "
                     f"{t['synops']:>10.3e} {t['macs']:>10.3e}  {verdict}")
    lines.append("")
    lines.append("== 3. largest n^3 per engine in 10 minutes on this machine (EXTRAPOLATED, not run) ==")
    lines.append(f"{'engine':<18} {'measured n (s)':<34} {'start s':>7} {'us/voxel':>9} {'n(time)':>7} "
                 f"{'n(mem)':>6} {'n max':>5} {'binds':>6} {'pred s':>7} {'pred mem':>9}")
    for c in result["part3_capacity"]:
        measured = ", ".join(f"{n}:{s:.1f}" for n, s in c["measured"])
        n_mem = ">" + str(c["n_time"]) if c["n_memory"] is None else str(c["n_memory"])
        lines.append(f"{c['engine']:<18} {measured:<34} {c['startup_s']:>7.1f} {c['per_voxel_s'] * 1e6:>9.2f} "
                     f"{c['n_time']:>7} {n_mem:>6} {c['n_max']:>5} {c['limit']:>6} {c['predicted_s']:>7.0f} "
                     f"{fmt_bytes(c['predicted_bytes']):>9}")
    for c in result["part3_capacity"]:
        lines.append(f"  memory estimate, {c['engine']}: {c['memory_source']}")
    load = result["load_average"]
    lines.append(f"benchmark wall time: {result['benchmark_wall_s']:.0f} s; 1-min load average "
                 f"{load['start'][0]:.1f} at start, {load['end'][0]:.1f} at end (2 CPUs, machine shared)")
    return "\n".join(lines)


def clean_json(value: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, NaN/inf to null, tuples to lists."""
    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
