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
`--native` runs the native-resolution benchmark instead (`bench_native.py`: 2 mm, two real anatomies, ANTs).
"""
from __future__ import annotations

import argparse
import platform
import sys
from typing import Any

from spikereg_deploy import evaluation as ev
from spikereg_deploy.atomic import write_json
from spikereg_deploy.cli.common import load_predictor, load_training_stage
from spikereg_deploy.imaging.sources import open_source
from spikereg_deploy.predict import Predictor

PAPER = {"ann_dice": 0.7480, "snn_dice": 0.7474, "spike_rate": 0.128}


def _evaluate(source: Any, predictors: list[Predictor], labels: list[str]) -> list[tuple[list[dict], dict]]:
    """Metrics per pair for every model on the same pairs; for a spiking model also its measured spike rates."""
    for predictor in predictors:
        if predictor.tally is not None:
            predictor.tally.clear()
    run = ev.evaluate(source, predictors, progress=False)
    out = []
    for predictor, label, rows, seconds in zip(predictors, labels, run.rows, run.seconds, strict=True):
        extra: dict[str, Any] = {"label": label, "seconds": round(seconds, 1)}
        if predictor.tally is not None and predictor.tally.rate() is not None:
            extra["spike_rate"] = predictor.tally.rate()
            extra["spike_rate_per_layer"] = predictor.tally.rates()
        out.append((rows, extra))
    return out


def _summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    agg = ev.aggregate(rows)
    return {"dice_mean": agg["dice"]["mean"], "dice_std": agg["dice"]["std"],
            "dice_before_mean": agg["dice_before"]["mean"], "hd95_mean_mm": agg["hd95"]["mean"],
            "sdlogj_learn2reg": agg["sdlogj_learn2reg"]["mean"],
            "percent_jacobian_nonpositive": 100.0 * agg["fraction_jacobian_nonpositive"]["mean"]}


def main() -> None:
    if "--native" in sys.argv[1:]:  # the native-resolution, cross-anatomy benchmark against ANTs (bench_native.py)
        import bench_native

        bench_native.main([arg for arg in sys.argv[1:] if arg != "--native"])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ann", default="runs/ann.pt")
    parser.add_argument("--converted", default="runs/converted.pt")
    parser.add_argument("--snn", default="runs/snn.pt")
    parser.add_argument("--extra", nargs="*", default=[], metavar="LABEL=CKPT",
                        help="more checkpoints reported beside them (e.g. other T), not judged against the targets")
    parser.add_argument("--pairs", type=int, default=48)
    parser.add_argument("--cross-pairs", type=int, default=16, help="cross-template pairs per model (0: skip)")
    parser.add_argument("--input-shape", nargs=3, type=int, default=(32, 32, 32), metavar=("D", "H", "W"))
    parser.add_argument("--json", default="benchmarks/results/registration.json")
    args = parser.parse_args()
    load_training_stage()
    shape = tuple(args.input_shape)
    pairs = open_source("embedded", shape, seed=0, count=args.pairs)
    cross = open_source("cross", shape, seed=0, count=args.cross_pairs)
    results: dict[str, Any] = {"pairs": len(pairs), "shape": list(shape), "data": "embedded, seed 0 (held out)",
                               "machine": platform.processor() or platform.machine(), "models": {},
                               "cross_template": {"pairs": args.cross_pairs, "data": "MNI152 2009a <-> CAT12, seed 0",
                                                  "models": {}}}
    extra = [tuple(item.rsplit("=", 1)) for item in args.extra]
    models = [("ann", args.ann, "ANN teacher"), ("converted", args.converted, "converted SNN"),
              ("snn", args.snn, "fine-tuned SNN"), *((k, v, k) for k, v in extra)]
    keys, labels = [key for key, _, _ in models], [label for _, _, label in models]
    loaded = {key: load_predictor(path) for key, path, _ in models}
    predictors = [loaded[key] for key in keys]
    all_rows: dict[str, list[dict[str, Any]]] = {}
    for (key, path, label), (rows, stats) in zip(models, _evaluate(pairs, predictors, labels), strict=True):
        all_rows[key] = rows
        steps = loaded[key].spec.time_steps if loaded[key].kind != "ann" else None  # the ANN has no T
        row = results["models"][key] = {"checkpoint": path, "time_steps": steps, **stats, **_summary(rows)}
        print(f"{label:<16} T={steps or '-'!s:<3} Dice {row['dice_mean']:.4f} (before {row['dice_before_mean']:.4f})"
              f"  %J<=0 {row['percent_jacobian_nonpositive']:.4f} %"
              + (f"  spike rate {100 * stats['spike_rate']:.2f} %" if "spike_rate" in stats else ""))
    if len(cross):
        for key, (cross_rows, cross_stats) in zip(keys, _evaluate(cross, predictors, labels), strict=True):
            row = results["cross_template"]["models"][key] = {**cross_stats, **_summary(cross_rows)}
            print(f"{cross_stats['label']:<16} cross-template Dice {row['dice_mean']:.4f} (before "
                  f"{row['dice_before_mean']:.4f})  %J<=0 {row['percent_jacobian_nonpositive']:.4f} %")
    converted_w, tuned_w = loaded["converted"].model.integer_weights(), loaded["snn"].model.integer_weights()
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
    write_json(args.json, results, null_non_finite=True)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
