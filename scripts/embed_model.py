"""Make the committed default model from a trained SNN checkpoint: weights only, float16 (exact for 8-bit mantissas).

    .venv/bin/python scripts/embed_model.py runs/snn.pt spikereg_deploy/data/default_model.pt
"""
from __future__ import annotations

import sys

import torch

from spikereg_deploy.atomic import atomic_file
from spikereg_deploy.training.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint


def main(src: str, dst: str) -> None:
    model = load_checkpoint(src, kind="snn")
    meta = dict(read_checkpoint(src).get("meta", {}))
    with torch.no_grad():
        for syn in model.synapses.values():
            syn.weight.copy_(syn.quantized_weight())  # what the model computes with; exact in float16
    half = {k: (v.half() if k.endswith(".weight") else v) for k, v in model.state_dict().items()}
    model.load_state_dict({k: v.float() for k, v in half.items()})
    meta["embedded_from"] = src
    save_checkpoint(dst, model, meta=meta)
    payload = torch.load(dst, weights_only=True)
    payload["state_dict"] = {k: (v.half() if k.endswith(".weight") else v) for k, v in payload["state_dict"].items()}
    with atomic_file(dst, suffix=".pt") as tmp:
        torch.save(payload, tmp)
    again = load_checkpoint(dst)
    for name, w in model.integer_weights().items():
        assert (again.integer_weights()[name] == w).all(), name
    print(f"wrote {dst}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
