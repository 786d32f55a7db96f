"""Peak memory of a process tree, sampled from /proc: Lava runs every process model in a forked child, so the
memory of a run is the parent's plus its children's, and the resident set alone would count shared pages twice.

Linux only (it reads /proc/<pid>/stat and /proc/<pid>/smaps_rollup).
"""
from __future__ import annotations

import contextlib
import os
import threading
import time


def process_tree_pids(root: int) -> list[int]:
    """The root process and all its descendants: Lava's process models run in forked children."""
    parent_of: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError), open(f"/proc/{entry}/stat") as fh:
                parent_of[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
    found, frontier = [root], {root}
    while frontier:
        frontier = {pid for pid, ppid in parent_of.items() if ppid in frontier}
        found += sorted(frontier)
    return found


def pss_bytes(pid: int) -> int:
    """Proportional set size: copy-on-write pages shared by Lava's forked children count once overall."""
    with contextlib.suppress(OSError, ValueError), open(f"/proc/{pid}/smaps_rollup") as fh:
        for line in fh:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    return 0


def ram_bytes() -> int:
    """This machine's total RAM (MemTotal), 0 where /proc/meminfo cannot be read."""
    with contextlib.suppress(OSError), open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


class PeakMemory:
    """Samples the PSS of this process tree in a thread; `peak - baseline` is what a run added at its worst.

    Reading smaps of ~30 forked processes takes up to a second, which would slow a run being timed on 2 cores:
    after each sample the sampler waits `pause` times as long as the sample took (9: about 10 % of one core, for
    timed runs; 1 for runs made only to measure memory). Other users of the machine do not count, as they would in
    MemAvailable. A sparse sampler can miss a short peak.
    """

    def __init__(self, pause: float = 9.0, min_interval_s: float = 0.1) -> None:
        self.pause = pause
        self.min_interval_s = min_interval_s
        self.peak = 0
        self.baseline = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> float:
        started = time.perf_counter()
        self.peak = max(self.peak, sum(pss_bytes(pid) for pid in process_tree_pids(os.getpid())))
        self.samples += 1
        return time.perf_counter() - started

    def _loop(self) -> None:
        while not self._stop.is_set():
            cost = self._sample()
            self._stop.wait(max(self.min_interval_s, self.pause * cost))

    def __enter__(self) -> PeakMemory:
        self._sample()
        self.baseline = self.peak
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def added(self) -> int | None:
        """Peak above the baseline, or None when fewer than 3 samples fell inside the run."""
        return self.peak - self.baseline if self.samples >= 3 else None
