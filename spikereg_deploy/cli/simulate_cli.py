"""`spikereg-simulate [NET] [--fixed F --moving M] -o OUTDIR`: run a .net in Lava (or the reference engine)."""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from spikereg_deploy.errors import SpikeRegError, cli_entry

from .common import add_input_shape, quiet_imports

DEFAULT_MAX_MEMORY = "16G"  # of this machine's 24 GiB, leaving room for the OS and the parent process


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spikereg-simulate",
        description="Run an exported spiking U-Net on a fixed/moving pair in the Lava CPU simulator (or the "
                    "reference engine) and count the synaptic events that happen.",
    )
    parser.add_argument("net", nargs="?", help=".net file (default: the embedded default model)")
    parser.add_argument("--fixed", help="fixed image (NIfTI); default: an embedded pair")
    parser.add_argument("--moving", help="moving image (NIfTI)")
    parser.add_argument("-o", "--output", required=True, help="output folder")
    parser.add_argument("--engine", choices=("lava", "reference"), default="lava",
                        help="lava: Lava CPU runtime (default); reference: vectorised torch engine, same integers")
    parser.add_argument("--tag", choices=("fixed_pt", "floating_pt"), default="fixed_pt",
                        help="Lava process models: fixed_pt = Loihi integers (default), floating_pt = float")
    parser.add_argument("--max-memory", default=DEFAULT_MAX_MEMORY,
                        help=f"refuse runs whose memory estimate exceeds this (default {DEFAULT_MAX_MEMORY})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the embedded pair (default 0)")
    add_input_shape(parser, default=None, help_text="resample the pair to this size (must suit the network)")
    return parser


def _load_network(net_path: str | None, staging: Path):
    from spikereg_deploy.export.reader import read_net

    if net_path:
        return read_net(net_path), net_path
    from .common import load_training_stage

    _, default_model, _ = load_training_stage()
    from spikereg_deploy.export.writer import write_net

    model, origin = default_model.load_default_model()
    print(f"no .net given: using the {origin}", file=sys.stderr)
    path = staging / "default_model.net"
    write_net(path, model.spec, model.integer_weights(), (32, 32, 32), description=origin)
    return read_net(path), "embedded default model"


def _load_pair(args: argparse.Namespace, multiple: int):
    """Return the pair on the network grid and a description; files are checked before anything runs."""
    if bool(args.fixed) != bool(args.moving):
        raise SpikeRegError("give both --fixed and --moving, or neither (embedded pair)")
    shape = tuple(args.input_shape) if args.input_shape else None
    if shape is not None and any(n <= 0 or n % multiple for n in shape):
        raise SpikeRegError(f"--input-shape {'x'.join(map(str, shape))} does not suit the network: sizes must be "
                            f"positive multiples of {multiple}")
    if args.fixed:
        from spikereg_deploy.imaging.nifti import load_volume
        from spikereg_deploy.imaging.pairs import pair_from_files

        if shape is None:
            native = load_volume(args.fixed).shape
            if any(n % multiple for n in native):
                raise SpikeRegError(f"volume {'x'.join(map(str, native))} does not suit the network (sizes must be "
                                    f"multiples of {multiple}); pass --input-shape to resample", args.fixed)
            shape = native
        pair = pair_from_files(args.fixed, args.moving, target_shape=shape, multiple=multiple)
        return pair, f"{args.fixed} <- {args.moving}"
    from spikereg_deploy.imaging.synthetic import embedded_pairs

    pair = embedded_pairs(1, shape=shape or (32, 32, 32), seed=args.seed)[0]
    return pair, f"embedded pair ({pair.name})"


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with quiet_imports():
        import torch

        from spikereg_deploy.simulators import simulation as sim
    torch.set_num_threads(1 if args.engine == "lava" else 2)
    max_memory = sim.parse_memory(args.max_memory)
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise SpikeRegError("output exists and is not a folder", out)
    with tempfile.TemporaryDirectory(prefix="spikereg-sim-") as tmp:
        staging = Path(tmp)
        loaded, net_desc = _load_network(args.net, staging)
        spec = loaded.spec
        pair, pair_desc = _load_pair(args, spec.required_multiple())
        image = np.stack([pair.fixed, pair.moving]).astype(np.float32)
        input_shape = tuple(int(n) for n in image.shape[1:])
        spec.geometry(input_shape)
        need = sim.estimate_memory(spec, input_shape, args.engine)
        print(f"memory estimate: {sim.human_bytes(need)} for {args.engine} at {'x'.join(map(str, input_shape))} "
              f"(projected)", file=sys.stderr)
        if need > max_memory:
            raise SpikeRegError(f"estimated memory {sim.human_bytes(need)} exceeds --max-memory "
                                f"{sim.human_bytes(max_memory)}; use a smaller --input-shape or --engine reference")
        result = sim.simulate(spec, loaded.weights, image, engine=args.engine, tag=args.tag, progress=True)
        meta = {"net": net_desc, "pair": pair_desc, "fixed_channel": 0, "moving_channel": 1}
        report = sim.build_report(result, spec, input_shape, meta)
        _write_outputs(staging, result, report, pair, args.moving)
        out.mkdir(parents=True, exist_ok=True)
        for name in ("displacement.nii.gz", "warped.nii.gz", "report.json", "rates.png"):
            shutil.move(str(staging / name), str(out / name))
    print(sim.format_table(report))
    print(f"displacement max |u| = {report['displacement']['max_abs']:.3f} voxels (measured); wall time "
          f"{report['wall_time_s']:.2f} s (measured); outputs in {out}")
    return 0


def _write_outputs(staging: Path, result, report: dict, pair, moving_path: str | None) -> None:
    """Displacement (D, H, W, 3) in voxels and the warped moving image, on the input file's grid when given."""
    from spikereg_deploy.imaging.nifti import load_volume, save_volume
    from spikereg_deploy.imaging.warp import warp_image
    from spikereg_deploy.simulators import simulation as sim

    disp, moving, affine = result.displacement, pair.moving, pair.affine
    if pair.transform is not None and moving_path:
        from spikereg_deploy.imaging.preprocess import normalize_intensity, restore_to_grid

        original = load_volume(moving_path)
        disp = restore_to_grid(disp, pair.transform, kind="displacement")
        moving, affine = normalize_intensity(original.data), original.affine
    save_volume(staging / "displacement.nii.gz", np.moveaxis(disp, 0, -1).astype(np.float32), affine)
    save_volume(staging / "warped.nii.gz", warp_image(moving, disp).astype(np.float32), affine)
    sim.write_json(staging / "report.json", report)
    sim.plot_rates(report, staging / "rates.png")


if __name__ == "__main__":
    sys.exit(main())
