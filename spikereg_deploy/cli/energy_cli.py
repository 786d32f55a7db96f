"""`spikereg-energy [REPORT.json] [--mapping mapping.json] -o OUTDIR`: measured SynOps vs projected MACs."""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from spikereg_deploy.errors import SpikeRegError, cli_entry

from .common import quiet_imports

OUTPUT_FILES = ("energy.json", "energy.csv", "energy.md", "synops.png", "spike_rates.png", "energy_split.png")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spikereg-energy",
        description="Energy report from a spikereg-simulate report: measured SynOps against projected MACs, the "
                    "45 nm proxy, the Loihi per-operation model, and the paper's ratio computed every way.",
    )
    parser.add_argument("report", nargs="?", help="report.json from spikereg-simulate (default: simulate the "
                                                  "embedded model on the embedded pair first)")
    parser.add_argument("--net", help=".net file the report was made with (default: the embedded default model)")
    parser.add_argument("--mapping", help="mapping.json from spikereg-map (adds spike hops to the Loihi model)")
    parser.add_argument("--profile", default="loihi2", help="core profile for per-op energies (loihi2, loihi1, FILE)")
    parser.add_argument("--engine", choices=("lava", "reference"), default="lava",
                        help="engine for the default run when no report is given")
    parser.add_argument("-o", "--output", required=True, help="output folder")
    return parser


def loihi_constants(profile) -> tuple[dict[str, float], dict[str, str]]:
    """Map a core profile's energy table onto the per-op names the energy model uses."""
    e, src = profile.energy_pj, profile.sources
    needed = {"synop": "synaptic_op_pj", "neuron_update_active": "neuron_update_active_pj",
              "neuron_update_inactive": "neuron_update_inactive_pj", "spike_in_tile": "spike_within_tile_pj"}
    missing = [v for v in needed.values() if v not in e]
    if missing:
        raise SpikeRegError(f"profile {profile.name} lacks energy entries: {', '.join(missing)}", profile.path)
    constants = {k: float(e[v]) for k, v in needed.items()}
    sources = {k: src.get(f"energy.{v}", src.get(v, "")) for k, v in needed.items()}
    if "hop_east_west_pj" in e and "hop_north_south_pj" in e:
        constants["hop"] = (float(e["hop_east_west_pj"]) + float(e["hop_north_south_pj"])) / 2
        sources["hop"] = "mean of the east-west and north-south hop energies of the profile"
    return constants, sources


def _default_report(engine: str, staging: Path) -> tuple[dict[str, Any], Any]:
    from . import simulate_cli

    sim_dir = staging / "simulation"
    code = simulate_cli.main(["-o", str(sim_dir), "--engine", engine])
    if code != 0:
        raise SpikeRegError("the default simulation failed")
    from spikereg_deploy.energy_report import load_simulation_report

    return load_simulation_report(sim_dir / "report.json"), None


def _load_spec(net: str | None):
    if net:
        from spikereg_deploy.export.reader import read_net

        return read_net(net).spec
    from .common import load_training_stage

    _, default_model, _ = load_training_stage()
    return default_model.load_default_model()[0].spec


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with quiet_imports():
        from spikereg_deploy import energy_report as er
    from spikereg_deploy.profiles import load_profile

    profile = load_profile(args.profile)
    constants, sources = loihi_constants(profile)
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise SpikeRegError("output exists and is not a folder", out)
    with tempfile.TemporaryDirectory(prefix="spikereg-energy-") as tmp:
        staging = Path(tmp)
        if args.report:
            report = er.load_simulation_report(args.report)
            report_path = args.report
        else:
            report, _ = _default_report(args.engine, staging)
            report_path = "default simulation"
        spec = _load_spec(args.net)
        er.check_report_matches(report, spec, report_path)
        mapping = None
        if args.mapping:
            mapping = _load_mapping(args.mapping, report)
        energy = er.build_energy_report(report, spec, constants, sources, profile.name, mapping)
        (staging / "energy.json").write_text(json.dumps(energy, indent=2) + "\n")
        (staging / "energy.csv").write_text(er.to_csv(energy))
        (staging / "energy.md").write_text(er.to_markdown(energy))
        er.plot_energy(energy, staging)
        out.mkdir(parents=True, exist_ok=True)
        for name in OUTPUT_FILES:
            shutil.move(str(staging / name), str(out / name))
    print(er.format_summary(energy))
    print(f"wrote {', '.join(OUTPUT_FILES)} to {out}")
    return 0


def _load_mapping(path: str, report: dict[str, Any]) -> dict[str, Any]:
    from spikereg_deploy.mapping_report import read_mapping

    p = Path(path)
    mapping = read_mapping(p)
    fp = (mapping.get("network") or {}).get("fingerprint")
    if fp != report["network"]["fingerprint"]:
        raise SpikeRegError(f"mapping is for another network (fingerprint {fp}, report has "
                            f"{report['network']['fingerprint']})", p)
    if list(mapping.get("input_shape", [])) != list(report["input_shape"]):
        raise SpikeRegError(f"mapping is for input {mapping.get('input_shape')}, report for {report['input_shape']}",
                            p)
    return mapping


if __name__ == "__main__":
    sys.exit(main())
