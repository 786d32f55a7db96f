"""`spikereg-export [CHECKPOINT] -o model.net` and `spikereg-export --check model.net`."""
from __future__ import annotations

import argparse
import sys

from spikereg_deploy.errors import SpikeRegError, cli_entry

from .common import add_input_shape, load_training_stage


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spikereg-export",
        description="Export a spiking U-Net checkpoint to NetX HDF5 (.net), or check a .net file.",
    )
    parser.add_argument("checkpoint", nargs="?", help="checkpoint.pt (default: the embedded default model)")
    parser.add_argument("-o", "--output", help="output .net file")
    parser.add_argument("--check", metavar="NET", help="validate a .net file and print its per-layer summary")
    add_input_shape(parser, help_text="volume size the file's layer shapes are written for")
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from spikereg_deploy.export.reader import format_summary, read_net, summarize

    if args.check:
        if args.checkpoint or args.output:
            raise SpikeRegError("--check takes only the .net file")
        loaded = read_net(args.check)
        print(format_summary(summarize(loaded)))
        return 0
    if not args.output:
        raise SpikeRegError("missing -o/--output (the .net file to write)")
    checkpoint, default_model, _ = load_training_stage()
    if args.checkpoint:
        model = checkpoint.load_checkpoint(args.checkpoint)
        origin = f"checkpoint {args.checkpoint}"
    else:
        model, origin = default_model.load_default_model()
    print(f"exporting {origin}", file=sys.stderr)
    input_shape = tuple(args.input_shape)
    model.spec.geometry(input_shape)  # refuse sizes the network cannot take before writing anything
    from spikereg_deploy.export.writer import write_net

    write_net(args.output, model.spec, model.integer_weights(), input_shape, description=origin)
    loaded = read_net(args.output)
    print(format_summary(summarize(loaded)))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
