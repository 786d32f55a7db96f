"""Run per-pair tasks in this process, on a local Dask cluster or on the user's, writing each result as it arrives.

- `workers=1` and no scheduler: the tasks run here, one after another, with no Dask at all.
- `workers=N`: a `distributed.LocalCluster` of N worker processes, one thread each. Each task loads its model once per
  worker (the task function caches it) and runs one pair.
- `scheduler="tcp://HOST:PORT"`: an existing cluster; its workers need this package installed.

Lava inside a task: Lava's runtime forks one process per process model, and a daemonic process may not have
children, so the workers are started non-daemonic (`distributed.worker.daemon: False`); the task imports Lava itself,
inside the worker. One torch (and OpenMP) thread per worker, so that N workers use N cores and a pair gives the same
floating-point result whichever worker or how many workers run it.

Failures: a task that raises records the pair as failed with a one-line error (the task function catches its own
errors); a worker that dies mid-task (killed, out of memory) has its task rescheduled by Dask, and a pair that kills
`distributed.scheduler.allowed-failures` + 1 workers is recorded as failed with that reason. The coordinator is the
only writer of the results database: a SIGKILL of it loses only the pairs still running.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from ..errors import SpikeRegError
from .results_db import PairResult, ResultsDB

__all__ = ["PairTaskLike", "run_tasks", "connect", "THREAD_ENVIRONMENT", "check_scheduler_address"]

#: One thread per worker process for every numerical library a task may use.
THREAD_ENVIRONMENT = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
CONNECT_TIMEOUT_S = 10
WORKER_PRELOAD = "spikereg_deploy.sweep.worker_setup"  # SIGINT ignored, dies with the coordinator


class PairTaskLike(Protocol):
    """What the runner needs of a task: its keys (to skip finished pairs) and how to fail it without running it."""

    model_key: str
    settings_key: str
    pair: str

    def failed(self, error: str) -> PairResult: ...


def check_scheduler_address(address: str) -> None:
    """A scheduler address Dask can dial: PROTOCOL://HOST:PORT (tcp, tls, ws, wss, inproc is not across processes)."""
    protocol, sep, rest = address.partition("://")
    host, colon, port = rest.rpartition(":")
    if not sep or protocol not in ("tcp", "tls", "ws", "wss") or not colon or not host or not port.isdigit():
        raise SpikeRegError(f"--scheduler {address!r}: give the scheduler's address as tcp://HOST:PORT")


@contextlib.contextmanager
def connect(workers: int, scheduler: str | None) -> Iterator[Any]:
    """A Dask client: to a new LocalCluster of `workers` processes, or to the cluster at `scheduler`."""
    import dask
    from distributed import Client, LocalCluster  # before config.set: leaving it would drop defaults set on import

    os.environ.update(THREAD_ENVIRONMENT)  # the workers inherit it (spawned processes copy the environment)
    # After an interrupt the killed Lava processes leave their shared memory to multiprocessing's resource tracker,
    # which frees it and says so in a warning per run: the cleanup is the point, the warning is noise on Ctrl-C.
    os.environ.setdefault("PYTHONWARNINGS", "ignore:resource_tracker:UserWarning")
    settings = {"distributed.worker.daemon": False,  # Lava forks its own processes inside a task
                "distributed.nanny.pre-spawn-environ": dict(THREAD_ENVIRONMENT),
                "distributed.comm.timeouts.connect": f"{CONNECT_TIMEOUT_S}s",
                "distributed.scheduler.worker-saturation": 1.0}
    with dask.config.set(settings):
        if scheduler is not None:
            check_scheduler_address(scheduler)
            try:
                client = Client(scheduler, timeout=f"{CONNECT_TIMEOUT_S}s", set_as_default=False)
            except (OSError, TimeoutError) as err:
                reason = " ".join(str(err).split())[:200] or type(err).__name__
                raise SpikeRegError(f"cannot reach the Dask scheduler at {scheduler} ({reason})") from None
            with client:
                yield client
            return
        # The workers' temporary files (Dask's scratch space, and through the preload Lava's and multiprocessing's
        # folders) go to one folder of ours, removed at the end: a worker killed on Ctrl-C cannot remove its own.
        scratch = _scratch_folder()
        ours = {"distributed.worker.preload": [WORKER_PRELOAD], "temporary-directory": scratch}
        try:
            with dask.config.set(ours):  # ours only, not a user's cluster
                cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=logging.ERROR)
            try:
                with Client(cluster, set_as_default=False) as client:
                    yield client
            except KeyboardInterrupt:  # Ctrl-C / SIGTERM: closing would wait for the pairs in flight; end them now
                logging.getLogger("distributed").setLevel(logging.CRITICAL)  # not a traceback per closed comm
                _kill_workers(cluster)
                raise
            finally:
                _close(cluster)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


#: Linux's limit on an AF_UNIX socket path (sun_path, 108 bytes with its NUL), and what multiprocessing (which
#: Lava's runtime uses in a worker) adds below a temporary folder for its listener: pymp-XXXXXXXX/listener-XXXXXXXX.
UNIX_SOCKET_PATH_MAX = 107
MULTIPROCESSING_SOCKET_TAIL = len("/pymp-12345678/listener-12345678")


def _scratch_folder() -> str:
    """A new folder for the workers' temporary files: in the user's temporary folder when the sockets
    multiprocessing makes below it still fit Linux's path limit, else in /tmp."""
    folder = tempfile.mkdtemp(prefix="spikereg-workers-")
    if len(folder) + MULTIPROCESSING_SOCKET_TAIL <= UNIX_SOCKET_PATH_MAX:
        return folder
    os.rmdir(folder)
    return tempfile.mkdtemp(prefix="spikereg-workers-", dir="/tmp")


def _close(cluster: Any) -> None:
    """Close the local cluster; interrupted while closing, kill its workers instead. Either way it is taken off
    distributed's exit hook, which would otherwise wait up to 10 s more for a cluster whose close was cut short."""
    from distributed.deploy.spec import SpecCluster

    try:
        cluster.close(timeout=10)
    except TimeoutError:  # a worker that would not stop: the results are in, end it
        _kill_workers(cluster)
    except KeyboardInterrupt:
        logging.getLogger("distributed").setLevel(logging.CRITICAL)
        _kill_workers(cluster)
        raise
    finally:
        SpecCluster._instances.discard(cluster)


def _kill_workers(cluster: Any) -> None:
    """SIGKILL the local cluster's worker processes and what their tasks forked (Lava's processes)."""
    from ..signals import descendant_pids, kill_pids

    pids: set[int] = set()
    for nanny in cluster.workers.values():
        pid = getattr(getattr(nanny, "process", None), "pid", None)
        if pid:
            pids |= {pid, *descendant_pids(pid)}
    kill_pids(pids)


def run_tasks(tasks: Sequence[PairTaskLike], task_fn: Callable[[Any], PairResult], db: ResultsDB, *,
              workers: int = 1, scheduler: str | None = None, progress: bool = True,
              on_result: Callable[[PairResult], None] | None = None) -> tuple[int, int]:
    """Run every task whose pair is not finished in `db`, recording each result at once.

    Returns (pairs run now, pairs skipped as already finished)."""
    if workers < 1:
        raise SpikeRegError(f"--workers must be >= 1, got {workers}")
    finished: dict[tuple[str, str], set[str]] = {}
    pending = []
    for task in tasks:
        key = (task.model_key, task.settings_key)
        if key not in finished:
            finished[key] = db.finished(*key)
        if task.pair not in finished[key]:
            pending.append(task)
    skipped = len(tasks) - len(pending)
    if not pending:
        return 0, skipped
    if scheduler is None and workers == 1:
        with _progress(len(tasks), skipped, workers, progress) as bar:
            for task in pending:
                _record(db, task_fn(task), bar, on_result)
        return len(pending), skipped
    with connect(workers, scheduler) as client:  # a refusal (unreachable scheduler) comes before any progress line
        shown = workers if scheduler is None else len(client.scheduler_info().get("workers", {}))
        with _progress(len(tasks), skipped, shown, progress) as bar:
            _run_on_cluster(client, pending, task_fn, lambda result: _record(db, result, bar, on_result))
    return len(pending), skipped


def _record(db: ResultsDB, result: PairResult, bar: Any, on_result: Callable[[PairResult], None] | None) -> None:
    db.record(result)
    bar.update(1)
    if on_result is not None:
        on_result(result)


def _run_on_cluster(client: Any, pending: Sequence[PairTaskLike], task_fn: Callable[[Any], PairResult],
                    record: Callable[[PairResult], None]) -> None:
    """Submit every task (Dask retries a task whose worker died) and record results in the order they finish."""
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    futures = {}
    for i, task in enumerate(pending):
        future = client.submit(task_fn, task, key=f"spikereg-pair-{i}-{task.model_key[:12]}-{task.settings_key[:12]}",
                               pure=False)
        futures[future.key] = (future, task)
    for future in as_completed([f for f, _ in futures.values()], loop=client.loop):
        task = futures[future.key][1]
        try:
            result = future.result()
        except KilledWorker as err:
            last = getattr(err.last_worker, "address", err.last_worker)
            result = task.failed(f"its worker died while running it, each of the {err.allowed_failures + 1} times "
                                 f"Dask ran it (last on {last}): out of memory or killed")
        except Exception as err:  # the task's own errors are caught inside it; this is transport or pickling
            result = task.failed(f"{type(err).__name__}: {' '.join(str(err).split())[:300]}")
        record(result)
        future.release()


def _progress(total: int, done: int, workers: int, enabled: bool) -> Any:
    from tqdm import tqdm

    bar = tqdm(total=total, initial=done, desc="pairs", unit="pair", disable=not enabled, dynamic_ncols=True)
    bar.set_postfix_str(f"{workers} worker{'s' if workers != 1 else ''}")
    return bar
