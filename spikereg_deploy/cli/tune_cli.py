"""`spikereg-tune TEACHER -o OUTDIR`: a multi-objective Optuna study of conversion settings (maximise Dice, maximise
the measured energy ratio), each trial converted here and evaluated through the same per-pair tasks as
`spikereg-sweep`, on validation pairs only; writes the Pareto front and a config of a chosen point."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spikereg_deploy.atomic import atomic_folder, check_output_path, json_text
from spikereg_deploy.errors import SpikeRegError, cli_entry

from .common import (
    add_distribution_options,
    add_input_shape,
    add_pair_source_options,
    add_profile_option,
    check_distribution_args,
    load_training_stage,
    non_negative_int,
    positive_int,
)

OUTPUTS = ("pareto.json", "pareto.png", "trials.csv", "chosen.toml")
HELD_OUT_SEED = 0  # the seed of the held-out embedded / cross pairs the README reports: never tuned on


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spikereg-tune",
        description="Tune conversion (neuron model, T, percentile, threshold scale, payload bits, input mode) and "
                    "fine-tuning (steps, sparsity weight) of a teacher for Dice and measured energy ratio (Optuna, "
                    "multi-objective, RDB storage; resumable). Trials are scored on validation pairs.")
    parser.add_argument("teacher", help="ANN teacher checkpoint (.pt) to convert in every trial")
    parser.add_argument("--trials", type=positive_int, default=12,
                        help="trials the study should hold when done (a resumed study runs only the rest)")
    parser.add_argument("--study", default="spikereg-tune", help="study name in the storage")
    parser.add_argument("--storage", metavar="FILE|URL",
                        help="Optuna RDB storage: SQLite file or SQLAlchemy URL (default OUTDIR.state/study.sqlite)")
    parser.add_argument("--state", metavar="DIR", help="trial checkpoints and pair results (default OUTDIR.state)")
    parser.add_argument("--space", default="default", help="search space: default, or a TOML file (docs/tuning.md)")
    add_pair_source_options(parser, seed_default=1, file_grid_options=False,
                            seed_help=f"seed of the validation pairs (default 1; {HELD_OUT_SEED} holds the held-out "
                                      "pairs and is refused)")
    parser.add_argument("--sampler-seed", type=non_negative_int, default=0, help="seed of Optuna's sampler")
    parser.add_argument("--max-dice-drop", type=float, default=0.01,
                        help="chosen point: the highest energy ratio whose Dice is within this of the front's best")
    add_input_shape(parser, help_text="network grid D H W (also the conversion's calibration grid)")
    add_profile_option(parser)
    add_distribution_options(parser, results_default=None)
    parser.add_argument("-o", "--output", required=True, help="output folder")
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from spikereg_deploy.mapping.profiles import load_profile

    from .pair_tasks import DataSpec

    if ":" not in args.data and args.seed == HELD_OUT_SEED:
        raise SpikeRegError(f"--seed {HELD_OUT_SEED}: those {args.data} pairs are the held-out ones the README "
                            "reports; tune on other pairs (e.g. --seed 1)")
    check_output_path(args.output, folder=True)
    check_distribution_args(args)
    out = Path(args.output)
    state = Path(args.state) if args.state else out.with_name(out.name + ".state")
    storage = args.storage or str(state / "study.sqlite")
    profile = load_profile(args.profile)
    load_training_stage()
    from .tuning import TuneSetup, choose_point, pareto_rows, plot_pareto, read_space, run_study, trials_csv

    setup = TuneSetup(teacher=args.teacher, data=DataSpec.from_args(args, tuple(args.input_shape)),
                      space=read_space(args.space), state=state, profile=profile, workers=args.workers,
                      scheduler=args.scheduler, results_db=args.results_db or str(state / "results.sqlite"))
    study, ran = run_study(setup, storage, args.study, args.trials, args.sampler_seed)
    front = pareto_rows(study)
    if not front:
        raise SpikeRegError(f"study {args.study!r} has no completed trial (every trial failed: see trials.csv)")
    chosen = choose_point(front, args.max_dice_drop, args.teacher, args.input_shape)
    result = {"study": args.study, "storage": storage, "teacher": args.teacher, "data": setup.data.settings(),
              "objectives": ["dice (mean over validation pairs, measured)",
                             "ratio_measured_45nm (ANN/SNN energy, measured counts, 45 nm proxy)"],
              "trials_total": len(study.trials), "trials_run_now": ran, "pareto_front": front,
              "chosen": {"trial": chosen["trial"], "rule": f"highest ratio with Dice >= best - {args.max_dice_drop}"}}
    with atomic_folder(out) as staging:
        (staging / "pareto.json").write_text(json_text(result, null_non_finite=True))
        (staging / "trials.csv").write_text(trials_csv(study))
        (staging / "chosen.toml").write_text(chosen["toml"])
        plot_pareto(study, front, chosen, staging / "pareto.png")
    print(f"spikereg-tune: study {args.study!r} ({storage}), {len(study.trials)} trials ({ran} run now), "
          f"Pareto front of {len(front)} (measured on {args.pairs if ':' not in args.data else 'all'} validation "
          "pairs):")
    for row in front:
        mark = "*" if row["trial"] == chosen["trial"] else " "
        print(f" {mark} trial {row['trial']:>3}: Dice {row['dice']:.4f}, energy ratio "
              f"{row['ratio_measured_45nm']:.2f}x (measured, 45 nm proxy)  {row['variant']}")
    print(f"chosen (*): trial {chosen['trial']} -> {out / 'chosen.toml'} (spikereg-train --config accepts it)")
    print(f"wrote {', '.join(OUTPUTS)} to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
