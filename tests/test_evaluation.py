"""Evaluation: aggregates, the paired comparison, and the CLI on embedded pairs."""
from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from spikereg_deploy.cli import evaluate_cli
from spikereg_deploy.evaluation import aggregate, pair_metrics, paired_comparison
from spikereg_deploy.export.writer import write_net
from spikereg_deploy.imaging.synthetic import embedded_pairs
from spikereg_deploy.training.checkpoint import save_checkpoint
from spikereg_deploy.training.snn import seeded_model


def test_identity_on_embedded_pair():
    pair = embedded_pairs(1, shape=(16, 16, 16), seed=1)[0]
    m = pair_metrics(pair, np.zeros((3, 16, 16, 16)))
    assert m["dice"] == pytest.approx(m["dice_before"])
    assert m["fraction_jacobian_nonpositive"] == 0 and m["sdlogj_textbook"] == pytest.approx(0, abs=1e-12)


def test_aggregate_and_paired_comparison_by_hand():
    a = [{"dice": d, "hd95": 1.0, "sdlogj_learn2reg": 0.1, "sdlogj_textbook": 0.1,
          "fraction_jacobian_nonpositive": 0.0, "dice_before": 0.5} for d in (0.7, 0.8, 0.9, 0.6)]
    b = [{**r, "dice": r["dice"] - delta} for r, delta in zip(a, (0.01, 0.03, 0.02, 0.04), strict=True)]
    agg = aggregate(a)["dice"]
    assert agg["mean"] == pytest.approx(0.75) and agg["std"] == pytest.approx(np.std([0.7, 0.8, 0.9, 0.6], ddof=1))
    assert agg["p30"] == pytest.approx(np.percentile([0.7, 0.8, 0.9, 0.6], 30))
    cmp = paired_comparison(a, b)
    assert cmp["mean_difference"] == pytest.approx(0.025)
    x = [0.7, 0.8, 0.9, 0.6]
    assert cmp["paired_t_p"] == pytest.approx(stats.ttest_rel(x, [r["dice"] for r in b]).pvalue)


def test_cli_net_vs_checkpoint(tmp_path, small_config, capsys):
    model = seeded_model(small_config, seed=2)
    net, ckpt = tmp_path / "m.net", tmp_path / "m.pt"
    write_net(net, model.spec, model.integer_weights(), (16, 16, 16))
    save_checkpoint(ckpt, model)
    out = tmp_path / "eval"
    assert evaluate_cli.main([str(net), "--compare", str(ckpt), "--pairs", "2", "--input-shape", "16", "16", "16",
                              "-o", str(out)]) == 0
    result = json.loads((out / "evaluation.json").read_text())
    # the exported .net on the integer engine and the checkpoint's quantized model give identical fields
    assert result["compare"]["paired"]["dice"]["mean_difference"] == 0
    assert [r["dice"] for r in result["per_pair"]] == [r["dice"] for r in result["compare"]["per_pair"]]
    assert (out / "pair.png").stat().st_size > 1000 and (out / "per_pair.csv").exists()


def test_cli_bad_data(tmp_path, capsys):
    code = evaluate_cli.main(["--data", "l2r:" + str(tmp_path / "missing"), "-o", str(tmp_path / "o")])
    assert code == 2 and "missing" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_cross_template_pairs(tmp_path, capsys):
    """The embedded default model on pairs between two anatomies: two pairs, one in each direction."""
    out = tmp_path / "cross"
    args = ["--data", "cross", "--pairs", "2", "--input-shape", "16", "16", "16", "-o", str(out)]
    assert evaluate_cli.main(args) == 0
    result = json.loads((out / "evaluation.json").read_text())
    names = [r["pair"] for r in result["per_pair"]]
    assert names == ["cross-0-0:mni2009a<-cat12", "cross-0-1:cat12<-mni2009a"]
    assert all(0.3 < r["dice_before"] < 0.95 for r in result["per_pair"])


def test_cli_full_disk_leaves_previous_outputs_identical(tmp_path, small_config, capsys, monkeypatch):
    """A second run that fails at its second file (ENOSPC) keeps the first run's folder byte for byte."""
    model = seeded_model(small_config, seed=2)
    net = tmp_path / "m.net"
    write_net(net, model.spec, model.integer_weights(), (16, 16, 16))
    out = tmp_path / "eval"
    args = [str(net), "--pairs", "2", "--input-shape", "16", "16", "16", "-o", str(out)]
    assert evaluate_cli.main(args) == 0
    (out / "mine.txt").write_text("the user's file")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(before) == ["evaluation.json", "mine.txt", "pair.png", "per_pair.csv"]
    capsys.readouterr()

    real_write, calls = Path.write_text, []

    def write_text(self: Path, *a, **kw):
        calls.append(self.name)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real_write(self, *a, **kw)

    monkeypatch.setattr(Path, "write_text", write_text)
    assert evaluate_cli.main([*args[:2], "3", *args[3:]]) == 2
    monkeypatch.undo()
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after tqdm's progress bar
    assert calls == ["evaluation.json", "per_pair.csv"]
    assert err.endswith(f"error: {out}: cannot write output (No space left on device)")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval", "m.net"]  # no stage left behind
    assert evaluate_cli.main([*args[:2], "3", *args[3:]]) == 0  # a good run replaces the outputs, keeps mine.txt
    assert json.loads((out / "evaluation.json").read_text())["pairs"] == 3
    assert (out / "mine.txt").read_text() == "the user's file"
    assert stat.S_IMODE((out / "evaluation.json").stat().st_mode) == 0o666 & ~current_umask()


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
