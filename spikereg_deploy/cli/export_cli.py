"""`spikereg-export [CHECKPOINT] -o model.net` and `spikereg-export --check model.net`."""
from __future__ import annotations

import argparse
import sys

from spikereg_deploy.atomic import check_output_path
from spikereg_deploy.errors import SpikeRegError, cli_entry
from spikereg_deploy.limits import check_export_size
from spikereg_deploy.mapping.profiles import load_profile
from spikereg_deploy.network import NetworkSpec

from .common import add_input_shape, load_model


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
    from spikereg_deploy.export.netx_plain import stock_netx_verdict
    from spikereg_deploy.export.reader import format_summary, read_net, summarize

    if args.check:
        if args.checkpoint or args.output:
            raise SpikeRegError("--check takes only the .net file")
        loaded = read_net(args.check)
        print(format_summary(summarize(loaded)))
        print(stock_netx_verdict(loaded))
        if loaded.source == "netx":
            print("plain NetX file: no T or input encoding stored; spikereg-simulate --input ARRAY.npy gives both "
                  "((C, H, W, T) spikes, or (C, H, W) analog with --time-steps)")
        else:
            _print_input_mode(loaded.spec)
        return 0
    if not args.output:
        raise SpikeRegError("missing -o/--output (the .net file to write)")
    check_output_path(args.output, folder=False)
    neuron_budget = load_profile("loihi2").neuron_budget  # the default profile: mapping is what a .net is for
    check_export_size(None, args.input_shape, neuron_budget)  # from the volume alone, before loading the model
    model, origin = load_model(args.checkpoint)
    check_export_size(model.spec, args.input_shape, neuron_budget)
    print(f"exporting {origin}", file=sys.stderr)
    from spikereg_deploy.export.export_model import export_model

    loaded = export_model(model.spec, model.integer_weights(), tuple(args.input_shape), args.output, origin)
    print(format_summary(summarize(loaded)))
    _print_input_mode(loaded.spec)
    print(f"wrote {args.output}")
    return 0


def _print_input_mode(spec: NetworkSpec) -> None:
    """One line for input as bias (the analog default prints nothing, as before)."""
    if spec.input_mode == "bias":
        print("input: bias (the first layer's current is computed once per inference and loaded as its neurons' "
              "bias, bias_exp 6)")


if __name__ == "__main__":
    sys.exit(main())
