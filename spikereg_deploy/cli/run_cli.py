"""`spikereg-run -o OUTDIR`: the whole chain on the embedded model and an embedded pair, with a short summary.

export -> simulation with event counting -> mapping (with the measured traffic) -> energy report -> evaluation.
Each stage is the library call its own command makes; this only strings them together into one folder.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from spikereg_deploy.atomic import atomic_folder, check_output_path, write_json
from spikereg_deploy.errors import cli_entry
from spikereg_deploy.limits import check_run_size, parse_memory

from .common import (
    DEFAULT_MAX_MEMORY,
    add_input_shape,
    load_model,
    load_simulators_stage,
    non_negative_int,
    quiet_imports,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spikereg-run",
        description="Run the embedded spiking U-Net on an embedded pair through export, Lava simulation, mapping, "
                    "energy and evaluation, and print a summary.",
    )
    parser.add_argument("-o", "--output", default="out/run", help="output folder (default out/run)")
    parser.add_argument("--checkpoint", help="model checkpoint (default: the embedded default model)")
    parser.add_argument("--engine", choices=("lava", "reference"), default="lava")
    parser.add_argument("--profile", default="loihi2", help="core profile: loihi2, loihi1 or a TOML file")
    add_input_shape(parser, help_text="input volume size D H W of the embedded pair")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the embedded pair")
    return parser


@contextlib.contextmanager
def _stage(name: str, wrote: Path) -> Iterator[None]:
    started = time.perf_counter()
    print(f"== {name}", file=sys.stderr)
    yield
    print(f"== {name} done in {time.perf_counter() - started:.1f} s: {wrote}", file=sys.stderr)


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from spikereg_deploy.mapping.profiles import load_profile
    from spikereg_deploy.run_summary import format_summary

    shape = tuple(args.input_shape)
    check_run_size(shape, parse_memory(DEFAULT_MAX_MEMORY))  # before anything is loaded, exported or built
    profile = load_profile(args.profile)
    out = Path(args.output)
    check_output_path(out, folder=True)
    # every stage writes into one hidden sibling of `out`, swapped in at the end: a failed stage, a full disk or
    # Ctrl-C leaves the previous run's folder as it was (atomic_folder)
    with atomic_folder(out) as staging:
        summary = _run_stages(args, shape, profile, out, staging)
    print(format_summary(summary))
    return 0


def _run_stages(args: argparse.Namespace, shape: tuple[int, int, int], profile: Any, out: Path, staging: Path
                ) -> dict[str, Any]:
    """Export, simulate, map, energy and evaluation into `staging`; reports name the files as they will be in
    `out` after the swap."""
    from spikereg_deploy.energy import report as er
    from spikereg_deploy.mapping.plan import plan_mapping, write_outputs
    from spikereg_deploy.mapping.report import read_mapping
    from spikereg_deploy.run_summary import build_summary, evaluate_registration

    net, sim_dir, mapping_path = staging / "model.net", staging / "simulation", staging / "mapping" / "mapping.json"
    started = time.perf_counter()
    model, origin = load_model(args.checkpoint)
    run_folder = load_simulators_stage()
    # the shape, the run's memory and the pair are the user's to fix: all checked before the first progress line,
    # so a refusal is the only line printed and no stage has started
    run_folder.sim.check_memory(model.spec, shape, args.engine, parse_memory(DEFAULT_MAX_MEMORY))
    pair = run_folder.load_pair(model.spec.required_multiple(), input_shape=shape, seed=args.seed)
    with _stage("export", out / "model.net"):
        with quiet_imports():
            from spikereg_deploy.export.export_model import export_model
        loaded = export_model(model.spec, model.integer_weights(), shape, net, origin)
    spec = loaded.spec
    with _stage("simulate", out / "simulation"):
        report = run_folder.simulate_to_folder(spec, loaded.weights, pair, sim_dir, engine=args.engine,
                                               max_memory=DEFAULT_MAX_MEMORY, net_description=str(out / "model.net"))
    with _stage("map", out / "mapping" / "mapping.json"):
        plan = plan_mapping(spec, shape, profile, traffic=sim_dir / "report.json", progress=True,
                            traffic_described_as=str(out / "simulation" / "report.json"))
        write_outputs(plan, mapping_path)
    with _stage("energy", out / "energy"):
        mapping = read_mapping(mapping_path)
        er.check_mapping_matches(mapping, report, out / "mapping" / "mapping.json")
        energy = er.build_energy_report(report, spec, profile, mapping)
        er.write_energy_outputs(energy, staging / "energy")
    evaluation = evaluate_registration(pair[0], sim_dir / "displacement.nii.gz")
    summary = build_summary(report, energy, mapping, evaluation, time.perf_counter() - started)
    write_json(staging / "summary.json", summary)
    return summary


if __name__ == "__main__":
    sys.exit(main())
