"""Registration accuracy and spike rate of the teacher, the converted SNN and the fine-tuned SNN, side by side.

The targets of the conversion/fine-tuning issue, measured on the same held-out embedded pairs (seed 0; training
draws its pairs from seeds >= 10000):
- the ANN teacher beats no registration (Dice before/after, % of voxels with a non-positive Jacobian);
- the fine-tuned SNN's Dice is within 0.01 of the teacher's (SpikeReg reports 0.7474 vs 0.7480), with the
  converted-but-not-fine-tuned SNN beside it;
- the SNN's mean spike rate (all spiking neurons, all T steps, measured in the quantized SLAYER model, which is
  spike-for-spike what Lava runs) is at most SpikeReg's 12.8 %;
- its %J<=0 is no worse than the teacher's.
Every model is also run on cross-template pairs (MNI152 2009a <-> CAT12 template, seed 0): two real anatomies, a
harder test that no model here was trained on.

Reproduce the checkpoints with the commands in the README ("Training the default model"), then:
    python benchmarks/bench_registration.py --ann runs/ann.pt --converted runs/converted.pt --snn runs/snn.pt
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from spikereg_deploy import evaluation as ev
from spikereg_deploy.cli.common import load_training_stage
from spikereg_deploy.imaging.pairs import cross_template_pairs, embedded_pairs

PAPER = {"ann_dice": 0.7480, "snn_dice": 0.7474, "spike_rate": 0.128}


def _model_rows(model: Any, pairs: list, label: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Metrics per pair; for a spiking model also the measured spikes per layer."""
    import torch

    spikes: dict[str, int] = {}
    neurons_steps: dict[str, int] = {}

    def predict(pair: Any) -> np.ndarray:
        x = torch.as_tensor(np.stack([pair.fixed, pair.moving]), dtype=torch.float32)[None]
        with torch.no_grad():
            out = model.eval()(x)
        if hasattr(out, "spikes"):
            for name, s in out.spikes.items():
                spikes[name] = spikes.get(name, 0) + int(s.sum())
                neurons_steps[name] = neurons_steps.get(name, 0) + int(s.numel())
            out = out.displacement
        return out[0].double().numpy()

    started = time.perf_counter()
    rows, _ = ev.evaluate(pairs, predict, progress=False)
    extra: dict[str, Any] = {"label": label, "seconds": round(time.perf_counter() - started, 1)}
    if spikes:
        extra["spike_rate"] = sum(spikes.values()) / sum(neurons_steps.values())
        extra["spike_rate_per_layer"] = {n: spikes[n] / neurons_steps[n] for n in spikes}
    return rows, extra


def _summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    agg = ev.aggregate(rows)
    return {"dice_mean": agg["dice"]["mean"], "dice_std": agg["dice"]["std"],
            "dice_before_mean": agg["dice_before"]["mean"], "hd95_mean_mm": agg["hd95"]["mean"],
            "sdlogj_learn2reg": agg["sdlogj_learn2reg"]["mean"],
            "percent_jacobian_nonpositive": 100.0 * agg["fraction_jacobian_nonpositive"]["mean"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ann", default="runs/ann.pt")
    parser.add_argument("--converted", default="runs/converted.pt")
    parser.add_argument("--snn", default="runs/snn.pt")
    parser.add_argument("--extra", nargs="*", default=[], metavar="LABEL=CKPT",
                        help="more checkpoints reported beside them (e.g. other T), not judged against the targets")
    parser.add_argument("--pairs", type=int, default=48)
    parser.add_argument("--cross-pairs", type=int, default=16, help="cross-template pairs per model (0: skip)")
    parser.add_argument("--shape", nargs=3, type=int, default=(32, 32, 32))
    parser.add_argument("--json", default="benchmarks/results/registration.json")
    args = parser.parse_args()
    checkpoint, _, _ = load_training_stage()
    pairs = embedded_pairs(args.pairs, shape=tuple(args.shape), seed=0)
    results: dict[str, Any] = {"pairs": len(pairs), "shape": list(args.shape), "data": "embedded, seed 0 (held out)",
                               "machine": platform.processor() or platform.machine(), "models": {},
                               "cross_template": {"pairs": args.cross_pairs, "data": "MNI152 2009a <-> CAT12, seed 0",
                                                  "models": {}}}
    cross = cross_template_pairs(args.cross_pairs, shape=tuple(args.shape), seed=0)
    all_rows: dict[str, list[dict[str, Any]]] = {}
    loaded: dict[str, Any] = {}
    extra = [tuple(item.rsplit("=", 1)) for item in args.extra]
    for key, path, label in (("ann", args.ann, "ANN teacher"), ("converted", args.converted, "converted SNN"),
                             ("snn", args.snn, "fine-tuned SNN"), *((k, v, k) for k, v in extra)):
        model = loaded[key] = checkpoint.load_checkpoint(path, kind=None)
        rows, stats = _model_rows(model, pairs, label)
        all_rows[key] = rows
        steps = model.config.time_steps if hasattr(model, "synapses") else None  # the ANN has no T
        results["models"][key] = {"checkpoint": path, "time_steps": steps, **stats, **_summary(rows)}
        print(f"{label:<16} T={steps or '-'!s:<3} Dice {results['models'][key]['dice_mean']:.4f} (before "
              f"{results['models'][key]['dice_before_mean']:.4f})  %J<=0 "
              f"{results['models'][key]['percent_jacobian_nonpositive']:.4f} %"
              + (f"  spike rate {100 * stats['spike_rate']:.2f} %" if "spike_rate" in stats else ""))
        if cross:
            cross_rows, cross_stats = _model_rows(model, cross, label)
            row = results["cross_template"]["models"][key] = {**cross_stats, **_summary(cross_rows)}
            print(f"{'':<16} cross-template Dice {row['dice_mean']:.4f} (before {row['dice_before_mean']:.4f})  "
                  f"%J<=0 {row['percent_jacobian_nonpositive']:.4f} %")
    converted_w, tuned_w = loaded["converted"].integer_weights(), loaded["snn"].integer_weights()
    results["weight_mantissas_changed_by_fine_tuning"] = {
        name: int((converted_w[name] != w).sum()) for name, w in tuned_w.items() if name in converted_w}
    print(f"fine-tuning changed {sum(results['weight_mantissas_changed_by_fine_tuning'].values()):,} of "
          f"{sum(w.size for w in tuned_w.values()):,} weight mantissas")
    ann, snn = results["models"]["ann"], results["models"]["snn"]
    results["paired"] = {"ann_vs_snn": ev.paired_comparison(all_rows["ann"], all_rows["snn"], "dice"),
                         "ann_vs_converted": ev.paired_comparison(all_rows["ann"], all_rows["converted"], "dice"),
                         "before_vs_ann": ev.paired_comparison(
                             [{"dice": r["dice_before"]} for r in all_rows["ann"]], all_rows["ann"], "dice")}
    results["targets"] = {
        "teacher_beats_no_registration": ann["dice_mean"] > ann["dice_before_mean"]
        and results["paired"]["before_vs_ann"]["paired_t_p"] < 0.05,
        "snn_dice_within_0.01_of_teacher": abs(snn["dice_mean"] - ann["dice_mean"]) <= 0.01,
        "snn_spike_rate_at_most_12.8_percent": snn["spike_rate"] <= PAPER["spike_rate"],
        "snn_folds_no_worse_than_teacher":
            snn["percent_jacobian_nonpositive"] <= ann["percent_jacobian_nonpositive"],
    }
    results["paper"] = PAPER
    results["units"] = {"dice": "fraction, measured", "hd95_mean_mm": "mm, measured",
                        "percent_jacobian_nonpositive": "% of voxels, measured",
                        "spike_rate": "spikes per neuron per step, measured (quantized SLAYER model)"}
    for name, ok in results["targets"].items():
        print(f"  {name}: {'met' if ok else 'NOT met'}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
