"""`spikereg-evaluate MODEL [--compare MODEL2] [--data ...] -o OUTDIR`: registration accuracy of a model."""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from spikereg_deploy.errors import SpikeRegError, cli_entry

from .common import load_training_stage


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spikereg-evaluate",
        description="Evaluate a checkpoint (.pt: ANN teacher or SNN, run as the quantized model) or an exported .net "
                    "(run on the integer reference engine) on labelled pairs: Dice, HD95, SDlogJ, folds.",
    )
    parser.add_argument("model", nargs="?", help="checkpoint.pt or model.net (default: the embedded default model)")
    parser.add_argument("--compare", help="a second model evaluated on the same pairs (paired comparison)")
    parser.add_argument("--data", default="embedded",
                        help="embedded (held-out synthetic pairs of the MNI152 template), cross (pairs between the "
                             "MNI152 2009a and CAT12 templates: two anatomies), l2r:ROOT (Learn2Reg OASIS validation "
                             "pairs) or neurite:ROOT (neurite-oasis layout)")
    parser.add_argument("--pairs", type=int, default=8, help="number of embedded or cross pairs (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the embedded pairs (training uses >= 10000)")
    parser.add_argument("--shape", nargs=3, type=int, default=(32, 32, 32), metavar=("D", "H", "W"),
                        help="network grid (default 32 32 32)")
    parser.add_argument("-o", "--output", required=True, help="output folder")
    return parser


def load_pairs(spec: str, n: int, seed: int, shape: tuple[int, int, int], multiple: int):
    from spikereg_deploy.imaging import pairs as P

    if spec == "embedded":
        return P.embedded_pairs(n, shape=shape, seed=seed)
    if spec == "cross":
        return P.cross_template_pairs(n, shape=shape, seed=seed)
    kind, _, root = spec.partition(":")
    if not root:
        raise SpikeRegError(f"--data {spec!r}: use embedded, cross, l2r:ROOT or neurite:ROOT")
    if kind == "l2r":
        return list(P.learn2reg_oasis_pairs(root, target_shape=shape, multiple=multiple))
    if kind == "neurite":
        return list(P.neurite_oasis_pairs(root, target_shape=shape, multiple=multiple))
    raise SpikeRegError(f"--data {spec!r}: unknown source {kind!r}")


def make_predictor(model_path: str | None):
    """Return (predict(pair) -> displacement, description, spec)."""
    import torch

    checkpoint, default_model, _ = load_training_stage()
    if model_path and model_path.endswith(".net"):
        from spikereg_deploy.engine import IntegerNetwork
        from spikereg_deploy.export.reader import read_net

        loaded = read_net(model_path)
        net = IntegerNetwork(loaded.spec, loaded.weights)
        return (lambda p: net.run(np.stack([p.fixed, p.moving])).displacement), f"{model_path} (integer engine)", \
            loaded.spec
    if model_path:
        model = checkpoint.load_checkpoint(model_path, kind=None)
        desc = f"{model_path} ({'ANN teacher' if type(model).__name__ == 'AnnUNet' else 'SNN, quantized'})"
    else:
        model, desc = default_model.load_default_model()

    def predict(pair) -> np.ndarray:
        x = torch.as_tensor(np.stack([pair.fixed, pair.moving]), dtype=torch.float32)[None]
        with torch.no_grad():
            out = model.eval()(x)
        disp = out.displacement if hasattr(out, "displacement") else out
        return disp[0].double().numpy()

    return predict, desc, model.spec


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from spikereg_deploy import evaluation as ev

    predict, desc, spec = make_predictor(args.model)
    shape = tuple(args.shape)
    spec.geometry(shape)
    pairs = load_pairs(args.data, args.pairs, args.seed, shape, spec.required_multiple())
    if not pairs:
        raise SpikeRegError(f"--data {args.data}: no pairs found")
    rows, fields = ev.evaluate(pairs, predict)
    result = {"model": desc, "data": args.data, "pairs": len(rows), "aggregate": ev.aggregate(rows),
              "per_pair": rows, "units": ev.UNITS}
    compare_rows = None
    if args.compare:
        predict_b, desc_b, _ = make_predictor(args.compare)
        compare_rows, _ = ev.evaluate(pairs, predict_b)
        result["compare"] = {"model": desc_b, "aggregate": ev.aggregate(compare_rows), "per_pair": compare_rows,
                             "paired": {m: ev.paired_comparison(rows, compare_rows, m)
                                        for m in ("dice", "fraction_jacobian_nonpositive")}}
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise SpikeRegError("output exists and is not a folder", out)
    with tempfile.TemporaryDirectory(prefix="spikereg-eval-") as tmp:
        staging = Path(tmp)
        (staging / "evaluation.json").write_text(json.dumps(result, indent=2) + "\n")
        (staging / "per_pair.csv").write_text(ev.rows_to_csv(rows))
        ev.plot_pair(pairs[0], fields[0], staging / "pair.png", f"{desc}: {pairs[0].name}")
        out.mkdir(parents=True, exist_ok=True)
        for name in ("evaluation.json", "per_pair.csv", "pair.png"):
            shutil.move(str(staging / name), str(out / name))
    agg = result["aggregate"]
    print(f"{desc} on {len(rows)} pairs ({args.data}), measured:")
    for key in ("dice_before", *ev.METRICS):
        if key in agg:
            a = agg[key]
            print(f"  {key:<30} mean {a['mean']:.4f}  std {a['std']:.4f}  p30 {a['p30']:.4f}  p70 {a['p70']:.4f}")
    if compare_rows is not None:
        p = result["compare"]["paired"]["dice"]
        print(f"  vs {result['compare']['model']}: Dice difference {p['mean_difference']:+.4f} "
              f"(paired t p={p['paired_t_p']:.3g}, Wilcoxon p={p['wilcoxon_p']:.3g}, n={p['n_pairs']})")
    print(f"wrote evaluation.json, per_pair.csv, pair.png to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
