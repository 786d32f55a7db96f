"""`spikereg-export [CHECKPOINT] -o model.net`, `spikereg-export CKPT --from spikereg -o model.net` (a checkpoint of
the SpikeReg reference implementation, docs/spikereg-import.md) and `spikereg-export --check model.net`."""
from __future__ import annotations

import argparse
import sys

from spikereg_deploy.atomic import check_output_path
from spikereg_deploy.errors import SpikeRegError, cli_entry
from spikereg_deploy.limits import check_export_size
from spikereg_deploy.mapping.profiles import load_profile
from spikereg_deploy.network import NetworkSpec

from .common import add_input_shape, load_model, quiet_imports

#: Checkpoint kinds `--from` takes: this project's (training/checkpoint.py) or the SpikeReg reference's.
SOURCES = ("spikereg-deploy", "spikereg")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spikereg-export",
        description="Export a spiking U-Net checkpoint to NetX HDF5 (.net), or check a .net file.",
    )
    parser.add_argument("checkpoint", nargs="?", help="checkpoint.pt (default: the embedded default model)")
    parser.add_argument("-o", "--output", help="output .net file")
    parser.add_argument("--check", metavar="NET", help="validate a .net file and print its per-layer summary")
    parser.add_argument("--from", dest="source", choices=SOURCES, default=SOURCES[0],
                        help="checkpoint kind: this project's (default) or 'spikereg', a state dict of the SpikeReg "
                             "reference implementation (alim98/SpikeReg; .pt/.pth, plain or under 'model_state_dict')")
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
    if args.source == "spikereg":
        spec, weights, origin = _import_spikereg(args.checkpoint)
    else:
        model, origin = load_model(args.checkpoint)
        spec, weights = model.spec, model.integer_weights()
    check_export_size(spec, args.input_shape, neuron_budget)
    print(f"exporting {origin}", file=sys.stderr)
    from spikereg_deploy.export.export_model import export_model

    loaded = export_model(spec, weights, tuple(args.input_shape), args.output, origin)
    print(format_summary(summarize(loaded)))
    _print_input_mode(loaded.spec)
    print(f"wrote {args.output}")
    return 0


def _import_spikereg(checkpoint: str | None) -> tuple[NetworkSpec, dict, str]:
    """A SpikeReg reference checkpoint mapped onto the network description; prints the layer-by-layer mapping."""
    if not checkpoint:
        raise SpikeRegError("--from spikereg needs the checkpoint file")
    with quiet_imports():
        from spikereg_deploy.export.spikereg_import import format_mapping, import_checkpoint
        from spikereg_deploy.export.spikereg_model import load_checkpoint

    imported = import_checkpoint(load_checkpoint(checkpoint))
    print(format_mapping(imported))
    return imported.spec, imported.weights, f"SpikeReg checkpoint {checkpoint}"


def _print_input_mode(spec: NetworkSpec) -> None:
    """One line for input as bias (the analog default prints nothing, as before)."""
    if spec.input_mode == "bias":
        print("input: bias (the first layer's current is computed once per inference and loaded as its neurons' "
              "bias, bias_exp 6)")


if __name__ == "__main__":
    sys.exit(main())
