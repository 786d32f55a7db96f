"""`spikereg-map [NET] [--profile loihi2|loihi1|FILE] [--traffic report.json] -o mapping.json`: plan cores
and chips.

Tiles every layer into core-sized blocks, builds the block traffic graph, places blocks on chips and cores,
and writes mapping.json with mapping_report.md and mapping_cores.png beside it (all three or none).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from pathlib import Path

from spikereg_deploy.atomic import check_output_path
from spikereg_deploy.errors import SpikeRegError, cli_entry
from spikereg_deploy.limits import check_mapping_size
from spikereg_deploy.mapping.partition import DEFAULT_PARTITIONERS, PARTITIONERS
from spikereg_deploy.mapping.plan import format_plan_summary, plan_mapping, read_traffic_report, write_outputs
from spikereg_deploy.mapping.profiles import BUILTIN_PROFILES, load_profile
from spikereg_deploy.mapping.traffic import DEFAULT_RATE
from spikereg_deploy.network import NetworkSpec

from .common import DEFAULT_INPUT_SHAPE, non_negative_int


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spikereg-map",
        description="Partition a spiking U-Net into Loihi core-sized blocks and place them on chips and "
        "cores.",
    )
    parser.add_argument("net", nargs="?", help=".net file (default: the default UNetConfig network)")
    parser.add_argument(
        "--config-default", action="store_true", help="map the default UNetConfig network (no .net needed)"
    )
    parser.add_argument(
        "--profile",
        default="loihi2",
        help=f"core profile: {' or '.join(BUILTIN_PROFILES)} or a TOML file (default loihi2)",
    )
    parser.add_argument("--traffic", help="spikereg-simulate report.json: measured per-layer spike rates")
    parser.add_argument(
        "--input-shape",
        nargs=3,
        type=int,
        metavar=("D", "H", "W"),
        help="input volume D H W (default: the .net's export shape, else the traffic report's, "
        f"else {' '.join(map(str, DEFAULT_INPUT_SHAPE))})",
    )
    parser.add_argument(
        "--assumed-rate",
        type=float,
        default=DEFAULT_RATE,
        help=f"spikes per neuron per step when no --traffic is given (default {DEFAULT_RATE}, "
        "SpikeReg's reported mean)",
    )
    parser.add_argument(
        "--fill-factor",
        type=float,
        help="fraction of each core's compartments to fill (default: the profile's; 0.875 as in lava-dl's "
        "compiler logs)",
    )
    parser.add_argument("--seed", type=non_negative_int, default=0, help="partitioner seed (default 0)")
    parser.add_argument(
        "--partitioner",
        nargs="+",
        default=list(DEFAULT_PARTITIONERS),
        choices=PARTITIONERS,
        help="chip partitioners to try, each placed in full; the fewest spike-hops wins (default auto: all "
        "installed ones up to 16,000 blocks, metis_rb above; mtkahypar and kahip are optional packages, "
        "skipped with a note when missing)",
    )
    parser.add_argument(
        "--seeds", type=int, default=1, help="seeds per partitioner: --seed, --seed + 1, ... (default 1)"
    )
    parser.add_argument(
        "-o", "--output", required=True, help="mapping.json to write (report files go beside it)"
    )
    return parser


def _load_spec(args: argparse.Namespace) -> tuple[NetworkSpec, tuple[int, int, int] | None, str]:
    if args.net and args.config_default:
        raise SpikeRegError("give a .net file or --config-default, not both")
    if args.net:
        try:
            from spikereg_deploy.export.reader import read_net
        except ImportError:
            raise SpikeRegError(
                "reading .net files needs the export stage (spikereg_deploy.export.reader), "
                "which is not available"
            ) from None
        loaded = read_net(args.net)
        spec = loaded.spec
        # a plain NetX file stores no T or input mode: the traffic report's run says them
        if getattr(loaded, "source", "spikereg") == "netx" and args.traffic:
            from spikereg_deploy.errors import read_json_object
            from spikereg_deploy.export.netx_plain import spec_for_report

            spec = spec_for_report(spec, read_json_object(args.traffic, "report"))
        return spec, tuple(loaded.input_shape), args.net  # type: ignore[return-value]
    from spikereg_deploy.unet import UNetConfig, build_unet_spec

    return build_unet_spec(UNetConfig()), None, "default UNetConfig network"


def _input_shape(args: argparse.Namespace, net_shape: tuple[int, int, int] | None) -> tuple[int, int, int]:
    """--input-shape, else the shape the .net was exported for, else the traffic report's, else 32^3."""
    if args.input_shape:
        return tuple(args.input_shape)  # type: ignore[return-value]
    if net_shape:
        return net_shape
    if args.traffic:
        with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):  # the reader says why later
            shape = json.loads(Path(args.traffic).read_text(encoding="utf-8")).get("input_shape")
            if isinstance(shape, list) and len(shape) == 3:
                return tuple(int(n) for n in shape)  # type: ignore[return-value]
    return DEFAULT_INPUT_SHAPE


def _check_options(args: argparse.Namespace) -> None:
    """Refuse out-of-range option values naming the option, before any line is printed (the library's own checks
    would name the built-in profile file for a bad --fill-factor, and come after the progress lines)."""
    fill = args.fill_factor
    if fill is not None and not (math.isfinite(fill) and 0 < fill <= 1):
        raise SpikeRegError(f"--fill-factor must be in (0, 1], got {fill}")
    if not (math.isfinite(args.assumed_rate) and 0 <= args.assumed_rate <= 1):
        raise SpikeRegError(f"--assumed-rate must be in [0, 1] spikes per neuron per step, got {args.assumed_rate}")
    if args.seeds < 1:
        raise SpikeRegError(f"--seeds must be at least 1, got {args.seeds}")


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _check_options(args)
    if Path(args.output).is_dir():
        raise SpikeRegError("output is a folder; give the mapping .json file to write", args.output)
    check_output_path(args.output, folder=False)
    profile = load_profile(args.profile)
    if args.fill_factor is not None:
        profile = profile.replace_limits(fill_factor=args.fill_factor)
    if args.input_shape:  # the volume's bound first: a file's network may be slow to read, the answer is no anyway
        check_mapping_size(None, args.input_shape, profile.neuron_budget, profile.fill_factor)
    spec, net_shape, origin = _load_spec(args)
    shape = _input_shape(args, net_shape)
    check_mapping_size(spec, shape, profile.neuron_budget, profile.fill_factor)  # before any array is built
    if args.traffic:  # a report of another network or size: refused before the first progress line
        read_traffic_report(args.traffic, spec, shape)
    if not args.net and not args.config_default:  # after the checks, so that a refusal stays one line
        print("no .net given: mapping the default UNetConfig network", file=sys.stderr)
    print(f"mapping {origin} at {'x'.join(map(str, shape))} on {profile.name}", file=sys.stderr)
    plan = plan_mapping(
        spec,
        shape,
        profile,
        traffic=args.traffic,
        assumed_rate=args.assumed_rate,
        seed=args.seed,
        progress=True,
        partitioners=args.partitioner,
        seeds=args.seeds,
    )
    write_outputs(plan, args.output)
    if plan.exceeds_largest_system():
        print(f"note: {plan.placement.n_chips:,} chips exceed the largest {profile.name} system in the profile "
              f"({profile.max_chips:,} chips)", file=sys.stderr)
    for note in plan.partitioning.notes if plan.partitioning else []:
        print(f"note: {note}", file=sys.stderr)
    print(format_plan_summary(plan))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
