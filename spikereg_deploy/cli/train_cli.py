"""`spikereg-train --stage ann|snn [--config CFG.toml] -o checkpoint.pt`: teacher training or SNN fine-tuning."""
from __future__ import annotations

import argparse
import sys

from spikereg_deploy.atomic import check_output_path
from spikereg_deploy.errors import cli_entry
from spikereg_deploy.torch_device import add_device_option

from .common import load_training_stage, quiet_imports


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spikereg-train",
        description="Train the ANN teacher (--stage ann) or convert it and fine-tune the spiking U-Net with SLAYER's "
                    "surrogate gradients (--stage snn). Runs resume from the output checkpoint when it exists.",
    )
    parser.add_argument("--stage", choices=("ann", "snn"), help="overrides the config's stage")
    parser.add_argument("--config", help="TOML config ([model], [data], [optim], [conversion] tables)")
    parser.add_argument("--init", help="stage snn: ANN checkpoint to convert (or SNN checkpoint to "
                        "continue); stage ann: a teacher to fine-tune from (e.g. ReLU into QCFS)")
    parser.add_argument("--steps", type=int, help="overrides the config's steps (stage snn: 0 = convert only)")
    parser.add_argument("--fresh", action="store_true", help="ignore an existing output checkpoint")
    add_device_option(parser, "training")
    parser.add_argument("-o", "--output", required=True, help="checkpoint to write (atomically)")
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_output_path(args.output, folder=False)
    load_training_stage()
    with quiet_imports():
        from spikereg_deploy.training.train import TrainConfig, train
    cfg = TrainConfig.from_toml(args.config) if args.config else TrainConfig()
    if args.stage:
        cfg.stage = args.stage
    if args.init:
        cfg.init = args.init
    if args.steps is not None:
        cfg.steps = args.steps
    cfg.validate()
    result = train(cfg, args.output, resume=not args.fresh, device=args.device)
    history = result.get("history") or []
    if history:
        last = history[-1]
        print(f"step {last['step']}: loss {last['loss']:.4f}, local NCC {last['ncc']:.4f} (measured on the last "
              f"training batch)")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
