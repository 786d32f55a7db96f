"""`spikereg-map [NET] [--profile loihi2|loihi1|FILE] [--traffic report.json] -o mapping.json`: plan cores
and chips.

Tiles every layer into core-sized blocks, builds the block traffic graph, places blocks on chips and cores,
and writes mapping.json with mapping_report.md and mapping_cores.png beside it (all three or none).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spikereg_deploy.atomic import atomic_file
from spikereg_deploy.energy_report import check_simulation_format, load_simulation_report
from spikereg_deploy.errors import SpikeRegError, cli_entry
from spikereg_deploy.mapping_report import (
    energy_estimate,
    evaluate,
    mapping_document,
    render_markdown,
    render_png,
    write_mapping,
)
from spikereg_deploy.network import NetworkSpec, as_triple
from spikereg_deploy.placement import (
    DEFAULT_RATE,
    BlockGraph,
    LayerRates,
    Placement,
    build_block_graph,
    naive_placement,
    place_blocks,
)
from spikereg_deploy.profiles import BUILTIN_PROFILES, CoreProfile, load_profile
from spikereg_deploy.tiling import NetworkTiling, tile_network

from .common import DEFAULT_INPUT_SHAPE


@dataclass(eq=False)
class MappingPlan:
    """Everything one mapping run decided and measured, ready for the report."""

    spec: NetworkSpec
    input_shape: tuple[int, int, int]
    profile: CoreProfile
    tiling: NetworkTiling
    rates: LayerRates
    graph: BlockGraph
    placement: Placement
    naive: Placement
    metrics: dict[str, Any]
    naive_metrics: dict[str, Any]
    energy: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def read_traffic_report(
    source: str | Path | dict[str, Any], spec: NetworkSpec, input_shape: tuple[int, int, int]
) -> LayerRates:
    """Per-layer spike rates from a `spikereg-simulate` report; one that is not of this network is refused."""
    where = "<report>" if isinstance(source, dict) else str(source)
    if isinstance(source, dict):
        data = source
        check_simulation_format(data, where)
    else:
        data = load_simulation_report(source)
    fingerprint = (data.get("network") or {}).get("fingerprint")
    if fingerprint != spec.fingerprint():
        raise SpikeRegError(
            f"report is from another network (fingerprint {fingerprint}, this network {spec.fingerprint()})",
            where,
        )
    if list(data.get("input_shape") or []) != list(input_shape):
        raise SpikeRegError(
            f"report was measured at input {data.get('input_shape')}, the mapping is for {list(input_shape)}",
            where,
        )
    t = data.get("time_steps")
    if not isinstance(t, int) or isinstance(t, bool) or t <= 0:
        raise SpikeRegError(f"report time_steps must be a positive integer, got {t!r}", where)
    rows = data.get("layers")
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise SpikeRegError("report 'layers' must be a list of objects", where)
    names = [r.get("name") for r in rows]
    expected = [layer.name for layer in spec.layers[1:]]
    if sorted(map(str, names)) != sorted(expected):
        raise SpikeRegError(f"report layers {names} do not match the network's {expected}", where)
    geo = spec.geometry(input_shape)
    rates: dict[str, float] = {}
    for row in rows:
        layer = spec.layer(row["name"])
        if row.get("neurons") != geo[layer.name].neurons:
            raise SpikeRegError(
                f"report counts {row.get('neurons')} neurons in layer {layer.name!r}, the network "
                f"has {geo[layer.name].neurons}",
                where,
            )
        if not layer.spiking:
            continue
        rate = row.get("spike_rate")
        if rate is None and isinstance(row.get("spikes"), int):
            rate = row["spikes"] / (geo[layer.name].neurons * t)
        if not isinstance(rate, int | float) or isinstance(rate, bool) or not (0 <= rate <= 1):
            raise SpikeRegError(f"layer {layer.name!r}: spike_rate must be in [0, 1], got {rate!r}", where)
        rates[layer.name] = float(rate)
    return LayerRates(rates, "measured", f"per-layer spike rates measured in {where}", t, data)


def plan_mapping(
    spec: NetworkSpec,
    input_shape: tuple[int, int, int] | list[int],
    profile: CoreProfile | str,
    traffic: str | Path | dict[str, Any] | None = None,
    assumed_rate: float = DEFAULT_RATE,
    seed: int = 0,
    progress: bool = False,
) -> MappingPlan:
    """Tile, build the traffic graph, place (and the naive baseline), evaluate, estimate energy."""
    shape = as_triple(list(input_shape), "input shape")
    prof = profile if isinstance(profile, CoreProfile) else load_profile(profile)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    tiling = tile_network(spec, shape, prof)
    timings["tiling"] = time.perf_counter() - start
    if traffic is not None:
        rates = read_traffic_report(traffic, spec, shape)
    else:
        rates = LayerRates.assumed(tiling, assumed_rate)
    mark = time.perf_counter()
    graph = build_block_graph(tiling, rates)
    timings["block_graph"] = time.perf_counter() - mark
    mark = time.perf_counter()
    placement = place_blocks(tiling, graph, prof, seed=seed, progress=progress)
    timings["placement"] = time.perf_counter() - mark
    mark = time.perf_counter()
    naive = naive_placement(tiling.n_blocks, prof)
    metrics, naive_metrics = evaluate(placement, graph, prof), evaluate(naive, graph, prof)
    timings["evaluation"] = time.perf_counter() - mark
    plan = MappingPlan(spec, shape, prof, tiling, rates, graph, placement, naive, metrics, naive_metrics)
    plan.energy = energy_estimate(plan)
    timings["total"] = time.perf_counter() - start
    plan.timings = {k: round(v, 3) for k, v in timings.items()}
    return plan


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
    parser.add_argument("--seed", type=int, default=0, help="METIS seed (default 0)")
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
        return loaded.spec, tuple(loaded.input_shape), args.net  # type: ignore[return-value]
    from spikereg_deploy.unet import UNetConfig, build_unet_spec

    if not args.config_default:
        print("no .net given: mapping the default UNetConfig network", file=sys.stderr)
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


def write_outputs(plan: MappingPlan, output: str | Path) -> dict[str, Any]:
    """Write mapping.json, <stem>_report.md and <stem>_cores.png: all three, or none if anything fails."""
    out = Path(output)
    if out.is_dir():
        raise SpikeRegError("output is a folder; give the mapping .json file to write", out)
    doc = mapping_document(plan)
    markdown = render_markdown(doc)
    usage = {r: plan.tiling.resource(r) / lim for r, lim in plan.profile.limits().items()}
    with contextlib.ExitStack() as stack:
        md_tmp = stack.enter_context(atomic_file(out.with_name(f"{out.stem}_report.md"), suffix=".md"))
        png = out.with_name(f"{out.stem}_cores.png")
        png_tmp = stack.enter_context(atomic_file(png, suffix=".png"))
        json_tmp = stack.enter_context(atomic_file(out, suffix=".json"))
        md_tmp.write_text(markdown, encoding="utf-8")
        render_png(doc, png_tmp, plan.profile.mesh, plan.profile.cores_per_router, usage)
        write_mapping(json_tmp, doc)
    mode = 0o666 & ~_umask()  # temporary files are private; the outputs get the user's usual permissions
    for path in (out, png, out.with_name(f"{out.stem}_report.md")):
        path.chmod(mode)
    return doc


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if Path(args.output).is_dir():
        raise SpikeRegError("output is a folder; give the mapping .json file to write", args.output)
    profile = load_profile(args.profile)
    if args.fill_factor is not None:
        profile = profile.replace_limits(fill_factor=args.fill_factor)
    spec, net_shape, origin = _load_spec(args)
    shape = _input_shape(args, net_shape)
    print(f"mapping {origin} at {'x'.join(map(str, shape))} on {profile.name}", file=sys.stderr)
    plan = plan_mapping(
        spec,
        shape,
        profile,
        traffic=args.traffic,
        assumed_rate=args.assumed_rate,
        seed=args.seed,
        progress=True,
    )
    write_outputs(plan, args.output)
    if profile.max_chips and plan.placement.n_chips > profile.max_chips:
        print(
            f"note: {plan.placement.n_chips:,} chips exceed the largest {profile.name} system in the profile "
            f"({profile.max_chips:,} chips)",
            file=sys.stderr,
        )
    m, n = plan.metrics, plan.naive_metrics
    print(
        f"cores {plan.tiling.n_blocks:,} (planned), lower bound {plan.tiling.lower_bound:,}, ratio "
        f"{plan.tiling.n_blocks / plan.tiling.lower_bound:.3f}; chips {plan.placement.n_chips:,}"
    )
    print(
        f"spike-hops/step {m['spike_hops_per_step']:.4g} vs naive {n['spike_hops_per_step']:.4g} "
        f"({plan.rates.label} rates, projected); inter-chip spikes/step "
        f"{m['inter_chip_spikes_per_step']:.4g} vs {n['inter_chip_spikes_per_step']:.4g}"
    )
    print(
        f"energy {plan.energy['total_uJ']:.4g} uJ per inference ({plan.energy['label']}); "
        f"planned in {plan.timings['total']:.1f} s (measured); wrote {args.output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
