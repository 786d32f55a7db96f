"""One way the tests run a plain NetX file in stock netx (lava-dl's `netx.hdf5.Network` on Lava's fixed_pt
simulator), shared by the CUBA and the sigma-delta checks."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def run_stock_netx(path: Path, spikes: np.ndarray, synaptic_layers: int) -> np.ndarray:
    """Feed a (C, H, W, T) input to stock netx and return its output per step, (neurons, T) int64: netx maps are
    (x, y, c), and the output is delayed one step per synaptic layer (nothing may arrive before)."""
    from lava.lib.dl import netx
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc import io

    net = netx.hdf5.Network(net_config=str(path))
    t_steps = spikes.shape[-1]
    steps = t_steps + synaptic_layers
    data = spikes.transpose(2, 1, 0, 3).astype(float)  # (C, H, W, T) -> (W, H, C, T)
    data = np.concatenate([data, np.zeros((*data.shape[:-1], steps - t_steps))], axis=-1)
    source = io.source.RingBuffer(data=data)
    sink = io.sink.RingBuffer(shape=net.out.shape, buffer=steps)
    source.s_out.connect(net.inp)
    net.out.connect(sink.a_in)
    try:
        net.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        got = sink.data.get()
    finally:
        net.stop()
    assert not got[:, :synaptic_layers].any()
    return got[:, synaptic_layers:].astype(np.int64)
