"""`spikereg-evaluate MODEL [--compare MODEL2] [--data ...] -o OUTDIR`: registration accuracy of a model."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spikereg_deploy.atomic import atomic_folder, check_output_path, json_text
from spikereg_deploy.errors import SpikeRegError, cli_entry
from spikereg_deploy.imaging.native import describe_grid, grid_report
from spikereg_deploy.torch_device import add_device_option, torch_device

from .common import (
    add_distribution_options,
    add_input_shape,
    add_pair_source_options,
    add_profile_option,
    check_distribution_args,
    load_predictor,
    load_training_stage,
)

OUTPUTS = ("evaluation.json", "per_pair.csv", "pair.png")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spikereg-evaluate",
        description="Evaluate a checkpoint (.pt: ANN teacher or SNN, run as the quantized model) or an exported .net "
                    "(run on the integer reference engine) on labelled pairs: Dice, HD95, SDlogJ, folds.",
    )
    parser.add_argument("model", nargs="?", help="checkpoint.pt or model.net (default: the embedded default model)")
    parser.add_argument("--compare", help="a second model evaluated on the same pairs (paired comparison)")
    add_pair_source_options(parser)
    add_input_shape(parser, help_text="network grid D H W")
    add_profile_option(parser)
    add_distribution_options(parser, results_default=None)
    add_device_option(parser, "a checkpoint's torch model")
    parser.add_argument("-o", "--output", required=True, help="output folder")
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from spikereg_deploy import evaluation as ev
    from spikereg_deploy.engine import estimate_engine_memory
    from spikereg_deploy.limits import DEFAULT_MAX_BYTES, check_pair_count, check_run_size
    from spikereg_deploy.sweep.aggregate import model_summary, paired
    from spikereg_deploy.sweep.cluster import run_tasks
    from spikereg_deploy.sweep.results_db import MEMORY, ResultsDB

    from .pair_tasks import DataSpec, ModelRef, make_tasks, model_key, run_pair_task

    shape = tuple(args.input_shape)
    check_output_path(args.output, folder=True)
    check_distribution_args(args)
    check_run_size(shape, DEFAULT_MAX_BYTES)  # sizes first: before a model is loaded or a pair built
    if args.data in ("embedded", "cross"):  # folder sources have as many pairs as files
        check_pair_count(args.pairs, 2 if args.compare else 1, shape)
    from spikereg_deploy.energy.accuracy import describe as describe_energy
    from spikereg_deploy.mapping.profiles import load_profile

    profile = load_profile(args.profile)
    load_training_stage()  # quietly: lava-dl and torch print notes on import
    torch_device(args.device)  # a missing GPU is one line before any model is loaded
    predictors = [load_predictor(args.model, args.device)]
    if args.compare:
        predictors.append(load_predictor(args.compare, args.device))
    for predictor in predictors:
        predictor.spec.geometry(shape)  # a shape the network cannot take is a one-line error, before any pair
        check_run_size(shape, DEFAULT_MAX_BYTES, 2 * estimate_engine_memory(predictor.spec, shape))
    data = DataSpec.from_args(args, shape, predictors[0].spec.required_multiple())
    source = data.open()
    if len(source) == 0:
        raise SpikeRegError(f"--data {args.data}: no pairs found")
    db = ResultsDB(args.results_db or MEMORY)
    paths = [args.model, args.compare] if args.compare else [args.model]
    refs = [ModelRef(path, device=args.device) for path in paths]
    per_model = [make_tasks(ref, model_key(ref.path, p.spec), data, source) for ref, p in zip(refs, predictors,
                                                                                              strict=True)]
    tasks = [t for pair_tasks in zip(*per_model, strict=True) for t in pair_tasks]  # pair by pair, as before
    ran, skipped = run_tasks(tasks, run_pair_task, db, workers=args.workers, scheduler=args.scheduler)
    results = [db.results(ts[0].model_key, ts[0].settings_key, [t.pair for t in ts]) for ts in per_model]
    summaries = [model_summary(r, p.spec, p.kind, profile) for r, p in zip(results, predictors, strict=True)]
    failed = summaries[0]["failed"] + (summaries[1]["failed"] if args.compare else [])
    if summaries[0]["pairs"] == 0:
        raise SpikeRegError(f"--data {args.data}: every pair failed (first: {failed[0]['pair']}: "
                            f"{failed[0]['error']})")
    rows = summaries[0]["per_pair"]
    first = source.pair(next(r.pair_index for r in results[0] if r.status == "ok"))
    first_field = predictors[0].predict(first.fixed, first.moving)  # for the figure (the tasks return no fields)
    grid = grid_report(first.native, first.transform, first.affine)
    scored_on = ev.SCORED_ON_NATIVE if rows and rows[0]["scored_on"] != "network grid" else ev.SCORED_ON_NETWORK
    result = {"model": predictors[0].name, "data": args.data, "split": args.split if args.data.startswith("l2r:")
              else None, "pairs": len(rows), "scored_on": scored_on, "grid_of_first_pair": grid,
              "aggregate": summaries[0]["aggregate"], "energy": summaries[0]["energy"], "per_pair": rows,
              "failed": summaries[0]["failed"], "units": ev.UNITS}
    if args.compare:
        compare_rows = summaries[1]["per_pair"]
        result["compare"] = {"model": predictors[1].name, "aggregate": summaries[1]["aggregate"],
                             "energy": summaries[1]["energy"], "per_pair": compare_rows,
                             "failed": summaries[1]["failed"],
                             "paired": paired(rows, compare_rows, ("dice", "fraction_jacobian_nonpositive"))}
    result["run"] = {"device": args.device, "workers": args.workers, "scheduler": args.scheduler,
                     "results_db": args.results_db,
                     "tasks_run": ran, "tasks_skipped_finished": skipped,
                     "note": "how the pairs were run; every other field is computed from the results alone"}
    out = Path(args.output)
    with atomic_folder(out) as staging:
        (staging / "evaluation.json").write_text(json_text(result, null_non_finite=True))  # Dice of absent labels
        (staging / "per_pair.csv").write_text(ev.rows_to_csv(rows))
        ev.plot_pair(first, first_field, staging / "pair.png", f"{predictors[0].name}: {first.name}")
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
    for f in failed:
        print(f"  FAILED {f['pair']}: {f['error']}")
    if skipped:
        print(f"  {skipped} pair run(s) were already in {args.results_db}: not run again")
    print(f"wrote {', '.join(OUTPUTS)} to {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
