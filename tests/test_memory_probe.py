"""The memory sampler sees a child process's memory (Lava's process models are children)."""
from __future__ import annotations

import os
import subprocess
import sys
import time

from spikereg_deploy.simulators.memory_probe import PeakMemory, process_tree_pids, pss_bytes, ram_bytes

CHILD_BYTES = 64 << 20
CHILD = ("import sys, time\n"
         f"block = bytes(range(256)) * ({CHILD_BYTES} // 256)\n"
         "print('ready', flush=True)\n"
         "sys.stdin.readline()\n")


def test_peak_includes_a_child_process():
    with PeakMemory(pause=1.0, min_interval_s=0.02) as mem:
        child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 text=True)
        try:
            assert child.stdout.readline().strip() == "ready"
            assert child.pid in process_tree_pids(os.getpid())
            assert pss_bytes(child.pid) >= CHILD_BYTES
            time.sleep(0.5)
        finally:
            child.communicate("\n", timeout=30)
    assert mem.samples >= 3
    assert mem.added is not None and mem.added >= CHILD_BYTES * 3 // 4
    assert child.pid not in process_tree_pids(os.getpid())


def test_machine_ram_is_known():
    assert ram_bytes() > CHILD_BYTES
