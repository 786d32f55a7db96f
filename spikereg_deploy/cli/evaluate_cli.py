"""`spikereg-evaluate MODEL [--compare MODEL2] [--data ...] -o OUTDIR`: registration accuracy of a model."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from spikereg_deploy.atomic import atomic_folder, check_output_path, json_text
from spikereg_deploy.errors import SpikeRegError, cli_entry
from spikereg_deploy.imaging.native import describe_grid, grid_report

from .common import add_input_shape, load_predictor, load_training_stage, non_negative_int

OUTPUTS = ("evaluation.json", "per_pair.csv", "pair.png")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spikereg-evaluate",
        description="Evaluate a checkpoint (.pt: ANN teacher or SNN, run as the quantized model) or an exported .net "
                    "(run on the integer reference engine) on labelled pairs: Dice, HD95, SDlogJ, folds.",
    )
    parser.add_argument("model", nargs="?", help="checkpoint.pt or model.net (default: the embedded default model)")
    parser.add_argument("--compare", help="a second model evaluated on the same pairs (paired comparison)")
    parser.add_argument("--data", default="embedded",
                        help="embedded (held-out synthetic pairs of the MNI152 template), cross (pairs between the "
                             "MNI152 2009a and CAT12 templates: two anatomies), l2r:ROOT (Learn2Reg OASIS validation "
                             "pairs) or neurite:ROOT (neurite-oasis layout)")
    parser.add_argument("--split", choices=("val", "train", "test"), default="val",
                        help="l2r:ROOT: which pairs of its *_dataset.json (val: registration_val or validation; "
                             "test: registration_test; train: training_paired_images, else consecutive training "
                             "images not used in validation). Default val")
    parser.add_argument("--pair-list", metavar="FILE",
                        help="neurite:ROOT: pairs to evaluate, one 'FIXED MOVING' subject pair a line (default: "
                             "every ordered pair of subjects)")
    parser.add_argument("--resolution", type=float, metavar="MM",
                        help="file pairs: run the network on a grid of MM mm voxels instead of fitting the pair "
                             "into --input-shape (the default); scores are always taken on the fixed label grid")
    parser.add_argument("--pairs", type=int, default=8, help="number of embedded or cross pairs (default 8)")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="seed of the embedded pairs (training uses >= 10000)")
    add_input_shape(parser, help_text="network grid D H W")
    parser.add_argument("--profile", default="loihi2",
                        help="core profile whose per-op energies price a spiking model's counted events (loihi2, "
                             "loihi1, FILE)")
    parser.add_argument("-o", "--output", required=True, help="output folder")
    return parser


def _energy(predictor: Any, profile: Any) -> dict[str, Any] | None:
    """The energy fields of a spiking model's evaluated pairs (None for the ANN: no events to count)."""
    from spikereg_deploy.energy.accuracy import energy_at_accuracy

    if predictor.tally is None or not predictor.tally.inferences:
        return None
    return energy_at_accuracy(predictor.tally, predictor.spec, profile, predictor.kind)


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from spikereg_deploy import evaluation as ev
    from spikereg_deploy.engine import estimate_engine_memory
    from spikereg_deploy.imaging.sources import open_source
    from spikereg_deploy.limits import DEFAULT_MAX_BYTES, check_pair_count, check_run_size

    shape = tuple(args.input_shape)
    check_output_path(args.output, folder=True)
    check_run_size(shape, DEFAULT_MAX_BYTES)  # sizes first: before a model is loaded or a pair built
    if args.data in ("embedded", "cross"):  # folder sources have as many pairs as files
        check_pair_count(args.pairs, 2 if args.compare else 1, shape)
    from spikereg_deploy.energy.accuracy import describe as describe_energy
    from spikereg_deploy.mapping.profiles import load_profile

    profile = load_profile(args.profile)
    load_training_stage()  # quietly: lava-dl and torch print notes on import
    predictors = [load_predictor(args.model)]
    if args.compare:
        predictors.append(load_predictor(args.compare))
    for predictor in predictors:
        predictor.spec.geometry(shape)  # a shape the network cannot take is a one-line error, before any pair
        check_run_size(shape, DEFAULT_MAX_BYTES, 2 * estimate_engine_memory(predictor.spec, shape))
    if args.resolution is not None and ":" not in args.data:
        raise SpikeRegError(f"--resolution applies to file pairs (l2r:ROOT, neurite:ROOT), not --data {args.data}")
    source = open_source(args.data, shape, seed=args.seed, count=args.pairs,
                         multiple=predictors[0].spec.required_multiple(), split=args.split,
                         pair_list=args.pair_list, resolution=args.resolution)
    if len(source) == 0:
        raise SpikeRegError(f"--data {args.data}: no pairs found")
    run = ev.evaluate(source, predictors)
    rows = run.rows[0]
    first = run.first_pair
    assert first is not None  # the source is not empty
    grid = grid_report(first.native, first.transform, first.affine)
    scored_on = ev.SCORED_ON_NATIVE if rows[0]["scored_on"] != "network grid" else ev.SCORED_ON_NETWORK
    result = {"model": predictors[0].name, "data": args.data, "split": args.split if args.data.startswith("l2r:")
              else None, "pairs": len(rows), "scored_on": scored_on, "grid_of_first_pair": grid,
              "aggregate": ev.aggregate(rows), "energy": _energy(predictors[0], profile), "per_pair": rows,
              "units": ev.UNITS}
    if args.compare:
        compare_rows = run.rows[1]
        result["compare"] = {"model": predictors[1].name, "aggregate": ev.aggregate(compare_rows),
                             "energy": _energy(predictors[1], profile),
                             "per_pair": compare_rows,
                             "paired": {m: ev.paired_comparison(rows, compare_rows, m)
                                        for m in ("dice", "fraction_jacobian_nonpositive")}}
    out = Path(args.output)
    with atomic_folder(out) as staging:
        (staging / "evaluation.json").write_text(json_text(result, null_non_finite=True))  # Dice of absent labels
        (staging / "per_pair.csv").write_text(ev.rows_to_csv(rows))
        ev.plot_pair(run.first_pair, run.first_fields[0], staging / "pair.png",
                     f"{predictors[0].name}: {run.first_pair.name}")
    agg = result["aggregate"]
    print(f"{predictors[0].name} on {len(rows)} pairs ({args.data}), measured:")
    print(f"  {describe_grid(grid)} (first pair)")
    print(f"  scored on {scored_on}")
    for key in ("dice_before", *ev.METRICS):
        if key in agg:
            a = agg[key]
            print(f"  {key:<30} mean {a['mean']:.4f}  std {a['std']:.4f}  p30 {a['p30']:.4f}  p70 {a['p70']:.4f}")
    if result["energy"] is not None:
        print("\n".join(describe_energy(result["energy"])))
    if args.compare:
        p = result["compare"]["paired"]["dice"]
        print(f"  vs {result['compare']['model']}: Dice difference {p['mean_difference']:+.4f} "
              f"(paired t p={p['paired_t_p']:.3g}, Wilcoxon p={p['wilcoxon_p']:.3g}, n={p['n_pairs']})")
    print(f"wrote {', '.join(OUTPUTS)} to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
