"""`spikereg-simulate [NET] [--fixed F --moving M] -o OUTDIR`: run a .net in Lava (or the reference engine);
`spikereg-simulate NETX --input ARRAY.npy -o OUTDIR` runs a plain lava-dl NetX file on one input array."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spikereg_deploy.atomic import check_output_path
from spikereg_deploy.errors import SpikeRegError, cli_entry
from spikereg_deploy.imaging.native import describe_grid
from spikereg_deploy.limits import DEFAULT_MAX_BYTES, check_run_size, parse_memory

from .common import (
    DEFAULT_INPUT_SHAPE,
    DEFAULT_MAX_MEMORY,
    add_input_shape,
    load_network,
    load_simulators_stage,
    non_negative_int,
    positive_int,
    quiet_imports,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spikereg-simulate",
        description="Run an exported spiking U-Net on a fixed/moving pair in the Lava CPU simulator (or the "
                    "reference engine) and count the synaptic events that happen.",
    )
    parser.add_argument("net", nargs="?", help=".net file (default: the embedded default model)")
    parser.add_argument("--fixed", help="fixed image (NIfTI); default: an embedded pair")
    parser.add_argument("--moving", help="moving image (NIfTI)")
    parser.add_argument("--input", metavar="ARRAY.npy",
                        help="plain NetX files: one sample as SLAYER blocks take it, a (C, H, W, T) 0/1 spike train "
                             "or a (C, H, W) analog image in [0, 1]")
    parser.add_argument("--time-steps", type=_positive_int, metavar="T",
                        help="with --input and an analog image: steps to present it (default 16; a spike train "
                             "gives its own T)")
    parser.add_argument("-o", "--output", required=True, help="output folder")
    parser.add_argument("--engine", choices=("lava", "reference"), default="lava",
                        help="lava: Lava CPU runtime (default); reference: vectorised torch engine, same integers")
    parser.add_argument("--tag", choices=("fixed_pt", "floating_pt"), default="fixed_pt",
                        help="Lava process models: fixed_pt = Loihi integers (default), floating_pt = float")
    parser.add_argument("--max-memory", default=DEFAULT_MAX_MEMORY,
                        help=f"refuse runs whose memory estimate exceeds this (default {DEFAULT_MAX_MEMORY})")
    parser.add_argument("--tiles", type=_tiles, default=1, metavar="N|auto",
                        help="run the volume as N overlapping slabs along its longest axis, stitched (auto: the "
                             "fewest whose memory estimate fits --max-memory); the field differs from a whole run "
                             "near the seams. Default 1 (whole volume)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the embedded pair (default 0)")
    add_input_shape(parser, default=None, help_text="resample the pair to this size (must suit the network)")
    parser.add_argument("--resolution", type=float, metavar="MM",
                        help="run the network on a grid of MM mm voxels (the pair is resampled to it; fixed and moving "
                             "may then have different grids). Default: the file's own voxels, cropped to the "
                             "foreground and padded, or fitted to --input-shape")
    parser.add_argument("--prealign", choices=("none", "affine"), default="none",
                        help="affine: align the moving file to the fixed one first (SimpleITK, mutual information, "
                             "a host step), then register the rest; outputs use the composed field. Default none")
    parser.add_argument("--fixed-labels", help="label map on the fixed image's grid: Dice per label in the report")
    parser.add_argument("--moving-labels", help="label map on the moving image's grid: warped by nearest neighbour "
                                                "into warped_labels.nii.gz")
    parser.add_argument("--warp-format", choices=("ras", "itk"), default="ras",
                        help="ras: displacement.nii.gz only (world mm, RAS components, default); itk: also "
                             "displacement_itk.nii.gz in ITK's LPS components, applied directly by "
                             "ITK/SimpleITK/ANTs")
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    max_memory = parse_memory(args.max_memory)
    if args.input_shape or not args.fixed:  # the pair's size is known: refuse it before anything is loaded
        check_run_size(args.input_shape or DEFAULT_INPUT_SHAPE, DEFAULT_MAX_BYTES)
    if args.input or args.time_steps:
        return _array_main(args, max_memory)
    run_folder = load_simulators_stage()
    out = Path(args.output)
    check_output_path(out, folder=True)
    network = load_network(args.net)
    if network.source == "netx":
        raise SpikeRegError("a plain NetX network runs on an input array: add --input ARRAY.npy ((C, H, W, T) "
                            "spikes or (C, H, W) analog)", args.net)
    shape = args.input_shape or (None if args.fixed else DEFAULT_INPUT_SHAPE)
    if shape and args.tiles == 1 and all(n > 0 and n % network.spec.required_multiple() == 0 for n in shape):
        run_folder.sim.check_memory(network.spec, shape, args.engine, max_memory)
    pair = run_folder.load_pair(network.spec.required_multiple(), fixed=args.fixed, moving=args.moving,
                                input_shape=args.input_shape, seed=args.seed, resolution=args.resolution,
                                fixed_labels=args.fixed_labels, moving_labels=args.moving_labels,
                                prealign=args.prealign == "affine")
    if network.note:
        print(network.note, file=sys.stderr)
    report = run_folder.simulate_to_folder(network.spec, network.weights, pair, out, engine=args.engine,
                                           tag=args.tag, max_memory=max_memory,
                                           net_description=network.description, moving_path=args.moving,
                                           warp_format=args.warp_format, tiles=args.tiles)
    print(run_folder.sim.format_table(report))
    print(describe_grid(report["grid"]))
    if "dice" in report:
        per_label = ", ".join(f"{lab}: {_fmt(v['after'])}" for lab, v in report["dice"]["per_label"].items())
        print(f"Dice before / after: {_fmt(report['dice']['mean_before'])} / {_fmt(report['dice']['mean_after'])} "
              f"(measured, native fixed label grid; per label after: {per_label})")
    max_mm = report["outputs"]["displacement.nii.gz"]["max_abs_mm"]
    print(f"displacement max |u| = {max_mm:.3f} mm on the fixed grid ({report['displacement']['max_abs']:.3f} "
          f"network voxels) (measured); wall time {report['wall_time_s']:.2f} s (measured); outputs in {out}")
    return 0


_PAIR_OPTIONS = ("fixed", "moving", "input_shape", "resolution", "fixed_labels", "moving_labels", "prealign")


def _array_main(args: argparse.Namespace, max_memory: int) -> int:
    """A plain NetX file on one input array: counts, output spikes, no registration outputs (the report says why)."""
    given = [f"--{name.replace('_', '-')}" for name in _PAIR_OPTIONS
             if getattr(args, name) not in (None, False, "none")] + (["--tiles"] if args.tiles != 1 else [])
    if given:
        raise SpikeRegError(f"--input runs a plain NetX network on an array; {', '.join(given)} belong(s) to "
                            f"registration pairs")
    if not args.input:
        raise SpikeRegError("--time-steps applies to --input with an analog image")
    if not args.net:
        raise SpikeRegError("--input needs the plain NetX file it feeds (spikereg-simulate NET --input ARRAY.npy)")
    out = Path(args.output)
    check_output_path(out, folder=True)
    network = load_network(args.net)
    if network.source != "netx":
        raise SpikeRegError("--input runs plain NetX files; a spikereg registration network takes --fixed and "
                            "--moving", args.net)
    with quiet_imports():
        from spikereg_deploy.simulators import array_run
    spec, image = array_run.load_input_array(args.input, network.spec, network.input_shape, args.time_steps)
    meta = {"net": network.description, "input": args.input}
    report = array_run.simulate_array_to_folder(spec, network.weights, image, network.input_shape, out,
                                                engine=args.engine, tag=args.tag, max_memory=max_memory, meta=meta)
    print(array_run.sim.format_table(report))
    spikes = report["output_spikes"]
    print(f"output layer {spikes['layer']}: {spikes['count']:,} spikes over T={report['time_steps']} (measured; "
          f"input mode {spec.input_mode}); wall time {report['wall_time_s']:.2f} s (measured); outputs in {out}")
    print(f"skipped: {'; '.join(f'{k} ({v})' for k, v in report['skipped'].items())}")
    return 0


def _tiles(text: str) -> int | str:
    """argparse type of --tiles: "auto" or a count >= 1."""
    return text if text == "auto" else positive_int(text)


def _positive_int(text: str) -> int:
    value = non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


if __name__ == "__main__":
    sys.exit(main())
