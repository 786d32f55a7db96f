"""`spikereg-sweep MODEL... --data D -o OUTDIR`: simulate + energy + evaluation of every model on every pair, spread
over Dask workers, each finished pair kept in a results database so that a rerun does only what is left."""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from spikereg_deploy.atomic import atomic_folder, check_output_path, json_text
from spikereg_deploy.errors import SpikeRegError, cli_entry

from .common import (
    add_distribution_options,
    add_input_shape,
    add_pair_source_options,
    add_profile_option,
    check_distribution_args,
    load_training_stage,
)

OUTPUTS = ("sweep.json", "per_pair.csv", "sweep.png")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spikereg-sweep",
        description="Run models x pairs (simulate, count events, price energy, score registration) as per-pair tasks "
                    "on Dask workers; finished pairs go to a results database at once, so a rerun skips them.")
    parser.add_argument("models", nargs="*", help="checkpoints (.pt) and .net files (default: the embedded model)")
    parser.add_argument("--engine", choices=("reference", "lava", "model"), default="reference",
                        help="reference: the integer engine (default); lava: the Lava CPU runtime, fixed_pt; model: "
                             "each file's own forward (needed for an ANN teacher)")
    add_pair_source_options(parser)
    add_input_shape(parser, help_text="network grid D H W")
    add_profile_option(parser)
    add_distribution_options(parser, results_default="OUTDIR.results.sqlite")
    parser.add_argument("-o", "--output", required=True, help="output folder")
    return parser


def run_sweep(model_paths: list[str | None], engine: str, data: Any, profile: Any, *, workers: int,
              scheduler: str | None, results_db: str, progress: bool = True) -> dict[str, Any]:
    """Every model on every pair of `data` (a DataSpec); the result block of sweep.json, computed from the DB."""
    from spikereg_deploy.sweep.aggregate import model_summary, paired
    from spikereg_deploy.sweep.cluster import run_tasks
    from spikereg_deploy.sweep.results_db import ResultsDB

    from .pair_tasks import ModelRef, load_task_predictor, make_tasks, model_key, run_pair_task

    refs = [ModelRef(path, engine) for path in model_paths]
    predictors = [load_task_predictor(ref) for ref in refs]  # here only for names, specs and keys
    # file pairs are cropped / padded to sizes every model can take
    data = replace(data, multiple=math.lcm(*(p.spec.required_multiple() for p in predictors)))
    source = data.open()
    if len(source) == 0:
        raise SpikeRegError(f"--data {data.data}: no pairs found")
    db = ResultsDB(results_db)
    per_model = [make_tasks(ref, model_key(ref.path, p.spec), data, source)
                 for ref, p in zip(refs, predictors, strict=True)]
    tasks = [t for column in zip(*per_model, strict=True) for t in column]
    ran, skipped = run_tasks(tasks, run_pair_task, db, workers=workers, scheduler=scheduler, progress=progress)
    models = []
    for ref, p, ts in zip(refs, predictors, per_model, strict=True):
        summary = model_summary(db.results(ts[0].model_key, ts[0].settings_key, [t.pair for t in ts]), p.spec,
                                p.kind, profile)
        models.append({"model": p.name, "file": ref.path, "model_key": ts[0].model_key,
                       "settings_key": ts[0].settings_key, **summary})
    for m in models[1:]:
        if models[0]["pairs"] >= 2 and m["pairs"] >= 2:
            m["paired_vs_first"] = paired(m["per_pair"], models[0]["per_pair"], ("dice",))
    db.close()
    return {"data": data.data, "settings": data.settings(), "engine": engine, "pairs_total": len(source),
            "models": models,
            "run": {"workers": workers, "scheduler": scheduler, "results_db": results_db, "tasks_run": ran,
                    "tasks_skipped_finished": skipped,
                    "note": "how the pairs were run; every other field is computed from the results alone"}}


def plot_sweep(result: dict[str, Any], path: Path) -> None:
    """Mean Dice (with its std) against the measured 45 nm energy ratio, one point per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spikereg_deploy.atomic import atomic_file

    fig, ax = plt.subplots(figsize=(7, 5))
    for i, m in enumerate(result["models"]):
        dice = m["aggregate"].get("dice")
        if dice is None:
            continue
        ratio = m["energy"]["ratio_measured_45nm"] if m["energy"] else 1.0
        ax.errorbar([ratio], [dice["mean"]], yerr=[dice["std"]], fmt="o", capsize=3, label=f"{i}: {m['model']}")
    ax.set_xscale("log")
    ax.set_xlabel("energy ratio ANN / SNN (measured counts, 45 nm proxy; 1 = no events counted)")
    ax.set_ylabel("Dice (mean +- std over pairs, measured)")
    ax.set_title(f"spikereg-sweep: {result['data']}, engine {result['engine']}")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    with atomic_file(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def _csv(result: dict[str, Any]) -> str:
    from spikereg_deploy.evaluation import rows_to_csv

    return rows_to_csv([{"model": i, **row} for i, m in enumerate(result["models"]) for row in m["per_pair"]])


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from spikereg_deploy.limits import DEFAULT_MAX_BYTES, check_pair_count, check_run_size
    from spikereg_deploy.mapping.profiles import load_profile

    from .pair_tasks import DataSpec

    shape = tuple(args.input_shape)
    check_output_path(args.output, folder=True)
    check_distribution_args(args)
    check_run_size(shape, DEFAULT_MAX_BYTES)
    if ":" not in args.data:
        check_pair_count(args.pairs, max(1, len(args.models)), shape)
    data = DataSpec.from_args(args, shape)
    profile = load_profile(args.profile)
    load_training_stage()
    results_db = args.results_db
    if results_db == "OUTDIR.results.sqlite":
        results_db = str(Path(args.output).with_name(Path(args.output).name + ".results.sqlite"))
    models: list[str | None] = list(args.models) or [None]
    result = run_sweep(models, args.engine, data, profile, workers=args.workers, scheduler=args.scheduler,
                       results_db=results_db)
    out = Path(args.output)
    with atomic_folder(out) as staging:
        (staging / "sweep.json").write_text(json_text(result, null_non_finite=True))
        (staging / "per_pair.csv").write_text(_csv(result))
        plot_sweep(result, staging / "sweep.png")
    failed = 0
    print(f"spikereg-sweep: {len(models)} model(s) x {result['pairs_total']} pairs ({args.data}, engine "
          f"{args.engine}), measured:")
    for i, m in enumerate(result["models"]):
        dice = m["aggregate"].get("dice", {}).get("mean", float("nan"))
        ratio = f"{m['energy']['ratio_measured_45nm']:.2f}x" if m["energy"] else "no events"
        print(f"  [{i}] {m['model']}: Dice {dice:.4f} over {m['pairs']} pairs; energy ratio {ratio} (measured "
              "counts, 45 nm proxy)")
        for f in m["failed"]:
            print(f"      FAILED {f['pair']}: {f['error']}")
        failed += len(m["failed"])
    print(f"  results database: {results_db} ({result['run']['tasks_run']} pair runs now, "
          f"{result['run']['tasks_skipped_finished']} already finished)")
    print(f"wrote {', '.join(OUTPUTS)} to {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
