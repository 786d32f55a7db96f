"""Helpers every command shares: quiet third-party imports, shape arguments, stage loading, model loading."""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spikereg_deploy.limits import DEFAULT_MAX_MEMORY  # noqa: F401  (the tools' --max-memory default)

if TYPE_CHECKING:
    from spikereg_deploy.predict import Predictor

DEFAULT_INPUT_SHAPE = (32, 32, 32)


@contextlib.contextmanager
def quiet_imports() -> Iterator[None]:
    """lava-dl prints a Prophesee warning and torch a CUDA note on import: keep a CLI's output to what it means."""
    os.environ.setdefault("CUDA_HOME", "/nonexistent")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def non_negative_int(text: str) -> int:
    """argparse type of a seed: an integer >= 0 in every tool, as the training config requires (numpy and torch
    seeds are unsigned; one rule everywhere rather than -1 meaning something in one tool and an error in another)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type of a count that must be at least 1 (--workers)."""
    value = non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_distribution_options(parser: argparse.ArgumentParser, results_default: str | None) -> None:
    """--workers / --scheduler / --results-db: where per-pair tasks run and where finished pairs are kept."""
    parser.add_argument("--workers", type=positive_int, default=1,
                        help="worker processes of a local Dask cluster, one core each (default 1: run here, no Dask)")
    parser.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                        help="run the pairs on an existing Dask cluster instead (its workers need spikereg-deploy)")
    where = results_default or "none: results live as long as the run"
    parser.add_argument("--results-db", metavar="FILE|URL", default=results_default,
                        help="database that keeps each finished pair at once, so a rerun skips it: an SQLite file or "
                             f"an SQLAlchemy URL of a database server (default: {where})")


def add_pair_source_options(parser: argparse.ArgumentParser, *, seed_default: int = 0,
                            seed_help: str = "seed of the embedded or cross pairs (training uses >= 10000)",
                            file_grid_options: bool = True) -> None:
    """--data, --split, --pairs, --seed and (`file_grid_options`) --pair-list, --resolution: the pairs a tool runs
    on, as `pair_tasks.DataSpec` takes them."""
    parser.add_argument("--data", default="embedded",
                        help="embedded (held-out synthetic pairs of the MNI152 template), cross (pairs between the "
                             "MNI152 2009a and CAT12 templates: two anatomies), l2r:ROOT (Learn2Reg OASIS validation "
                             "pairs) or neurite:ROOT (neurite-oasis layout)")
    parser.add_argument("--split", choices=("val", "train", "test"), default="val",
                        help="l2r:ROOT: which pairs of its *_dataset.json (val: registration_val or validation; "
                             "test: registration_test; train: training_paired_images, else consecutive training "
                             "images not used in validation). Default val")
    if file_grid_options:
        parser.add_argument("--pair-list", metavar="FILE",
                            help="neurite:ROOT: pairs to run, one 'FIXED MOVING' subject pair a line (default: "
                                 "every ordered pair of subjects)")
        parser.add_argument("--resolution", type=float, metavar="MM",
                            help="file pairs: run the network on a grid of MM mm voxels instead of fitting the pair "
                                 "into --input-shape (the default); scores are always taken on the fixed label grid")
        parser.add_argument("--prealign", choices=("none", "affine"), default="none",
                            help="file pairs: align each moving image to its fixed one by an affine first "
                                 "(SimpleITK, mutual information, a host step); scores use the composed field")
    parser.add_argument("--pairs", type=int, default=8, help="number of embedded or cross pairs (default 8)")
    parser.add_argument("--seed", type=non_negative_int, default=seed_default, help=seed_help)


def add_profile_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="loihi2",
                        help="core profile whose per-op energies price a spiking model's counted events (loihi2, "
                             "loihi1, FILE)")


def check_distribution_args(args: argparse.Namespace) -> None:
    """A malformed --scheduler address is refused with the other argument checks, before any model is loaded."""
    if args.scheduler is not None:
        from spikereg_deploy.sweep.cluster import check_scheduler_address

        check_scheduler_address(args.scheduler)


def add_input_shape(parser: argparse.ArgumentParser, default: tuple[int, int, int] | None = DEFAULT_INPUT_SHAPE,
                    help_text: str = "input volume size D H W") -> None:
    parser.add_argument("--input-shape", nargs=3, type=int, metavar=("D", "H", "W"), default=default,
                        help=f"{help_text} (default: {' '.join(map(str, default)) if default else 'from the file'})")


def load_training_stage():
    """Import the training stage (torch + lava-dl) lazily: commands that only read files stay fast."""
    with quiet_imports():
        import torch

        from spikereg_deploy.training import checkpoint, default_model, snn  # noqa: F401
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    return checkpoint, default_model, snn


def load_simulators_stage():
    """Import the simulators stage's folder runner lazily (torch, and lava-nc when a Lava run starts)."""
    with quiet_imports():
        from spikereg_deploy.simulators import run_folder
    return run_folder


def load_model(checkpoint: str | None):
    """(model, origin) from a checkpoint, or the embedded default model when none is given."""
    checkpoint_module, default_model, _ = load_training_stage()
    if checkpoint:
        return checkpoint_module.load_checkpoint(checkpoint), f"checkpoint {checkpoint}"
    return default_model.load_default_model()


@dataclass(frozen=True)
class NetworkSource:
    """A network ready to run or cost: spec, integer weights, and what it came from (for reports)."""

    spec: Any
    weights: dict[str, Any]
    description: str
    #: "spikereg" (a 3-D .net or the embedded model) or "netx" (a plain lava-dl NetX file: T and input mode come
    #: from the run, so reports are matched through `export.netx_plain.spec_for_report`)
    source: str = "spikereg"
    input_shape: tuple[int, ...] = ()
    note: str | None = None  # for stderr, printed by the caller once the inputs are checked (a refusal stays one line)


def load_network(net_path: str | None) -> NetworkSource:
    """A .net file, or the embedded default model passed through a temporary .net (write, read back) so it runs
    exactly as an exported file would."""
    from spikereg_deploy.export.reader import read_net

    if net_path:
        loaded = read_net(net_path)
        return NetworkSource(loaded.spec, loaded.weights, net_path, loaded.source, tuple(loaded.input_shape))
    from spikereg_deploy.export.export_model import export_model

    model, origin = load_model(None)
    with tempfile.TemporaryDirectory(prefix="spikereg-net-") as tmp:
        loaded = export_model(model.spec, model.integer_weights(), DEFAULT_INPUT_SHAPE,
                              Path(tmp) / "default_model.net", origin)
    return NetworkSource(loaded.spec, loaded.weights, "embedded default model",
                         note=f"no .net given: using the {origin}")


def load_predictor(path: str | os.PathLike[str] | None, device: str = "cpu") -> Predictor:
    """The model in a file, ready to predict: a `.net` on the integer engine (export stage only), a checkpoint as the
    torch model its `kind` names, None the embedded default model (training stage, imported quietly); torch models
    on `device` (`torch_device.py`)."""
    if path is not None and str(path).endswith(".net"):
        from spikereg_deploy.errors import SpikeRegError

        if device != "cpu":
            raise SpikeRegError(f"--device {device} runs checkpoints (torch models); a .net runs on the integer "
                                "reference engine, which is CPU-only", path)
        from spikereg_deploy.export.reader import read_net
        from spikereg_deploy.predict import IntegerEnginePredictor

        loaded = read_net(path)
        if loaded.source == "netx":
            raise SpikeRegError("a plain NetX network ends in spikes, not a displacement readout: it cannot register "
                                "(run it with spikereg-simulate NET --input ARRAY.npy)", path)
        return IntegerEnginePredictor(loaded.spec, loaded.weights, f"{path} (integer engine)")
    load_training_stage()
    from spikereg_deploy.training.predict import load_checkpoint_predictor

    return load_checkpoint_predictor(path, device)
