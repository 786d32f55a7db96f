"""`spikereg-energy [REPORT.json] [--mapping mapping.json] -o OUTDIR`: measured SynOps vs projected MACs."""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from spikereg_deploy.atomic import check_output_path
from spikereg_deploy.errors import SpikeRegError, cli_entry

from .common import DEFAULT_MAX_MEMORY, NetworkSource, load_network, load_simulators_stage, quiet_imports


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spikereg-energy",
        description="Energy report from a spikereg-simulate report: measured SynOps against projected MACs, the "
                    "45 nm proxy, the Loihi per-operation model, and the paper's ratio computed every way.",
    )
    parser.add_argument("report", nargs="?", help="report.json from spikereg-simulate (default: simulate the "
                                                  "network (--net) on the embedded pair first)")
    parser.add_argument("--net", help=".net file the report was made with (default: the embedded default model)")
    parser.add_argument("--mapping", help="mapping.json from spikereg-map (its packets and hops go into the Loihi "
                                          "model)")
    parser.add_argument("--profile", default="loihi2", help="core profile for per-op energies (loihi2, loihi1, FILE)")
    parser.add_argument("--engine", choices=("lava", "reference"), default="lava",
                        help="engine for the default run when no report is given")
    parser.add_argument("-o", "--output", required=True, help="output folder")
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with quiet_imports():
        from spikereg_deploy.energy import report as er
    from spikereg_deploy.mapping.profiles import load_profile
    from spikereg_deploy.mapping.report import read_mapping

    profile = load_profile(args.profile)
    out = Path(args.output)
    check_output_path(out, folder=True)
    network = load_network(args.net)
    if args.report:
        report, report_path = er.load_simulation_report(args.report, complete=True), args.report
    else:
        if network.note:
            print(network.note, file=sys.stderr)
        report, report_path = _default_report(network, args.engine), "default simulation"
    spec = network.spec
    if network.source == "netx":  # a plain NetX file stores no T or input mode: the report's run says them
        from spikereg_deploy.export.netx_plain import spec_for_report

        spec = spec_for_report(spec, report)
    er.check_report_matches(report, spec, report_path)
    mapping = None
    if args.mapping:
        mapping = read_mapping(args.mapping)
        er.check_mapping_matches(mapping, report, args.mapping)
    if args.report and network.note:  # after every input check, so that a refusal is the only line
        print(network.note, file=sys.stderr)
    energy = er.build_energy_report(report, spec, profile, mapping)
    er.write_energy_outputs(energy, out)
    print(er.format_summary(energy))
    print(f"wrote {', '.join(er.OUTPUT_FILES)} to {out}")
    return 0


def _default_report(network: NetworkSource, engine: str) -> dict:
    """Simulate the network on the embedded pair (what `spikereg-simulate -o DIR` does) and return its report."""
    if network.source == "netx":
        raise SpikeRegError("a plain NetX network has no registration pair to run: give the report of "
                            "`spikereg-simulate NET --input ARRAY.npy -o DIR`", network.description)
    run_folder = load_simulators_stage()
    pair = run_folder.load_pair(network.spec.required_multiple())
    with tempfile.TemporaryDirectory(prefix="spikereg-energy-sim-") as tmp:
        return run_folder.simulate_to_folder(network.spec, network.weights, pair, Path(tmp) / "simulation",
                                             engine=engine, max_memory=DEFAULT_MAX_MEMORY,
                                             net_description=network.description)


if __name__ == "__main__":
    sys.exit(main())
