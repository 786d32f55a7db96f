"""Ctrl-C and SIGTERM that end a run cleanly: the signal becomes an exception, worker processes never outlive us.

Two pieces:

- `termination_as_exception` (installed by `errors.cli_entry` for every tool): SIGTERM raises `Terminated`, a
  `KeyboardInterrupt`, so `with` blocks (temporary folders, atomic output stages) unwind exactly as for Ctrl-C
  instead of the process dying where it stands and leaving its temporary files behind.
- `deferred_signals` (used around a Lava run): Lava's runtime talks to its forked workers through blocking
  channel calls (`Runtime._get_resp_for_run`, `stop()`); an exception raised inside one leaves the runtime
  mid-protocol, and its `stop()` then waits forever for an answer (the futex hang of issue 19). So while the
  runtime lives, a signal is only recorded; the caller finishes the current `run()` call, calls `stop()` on an
  idle runtime (the normal STOP/TERMINATED exchange) and then raises. Workers forked meanwhile ignore SIGINT and
  SIGTERM (a terminal's Ctrl-C reaches the whole process group; the workers must not die mid-message, each with
  its own traceback) and get PR_SET_PDEATHSIG, so they are killed by the kernel should we die anyway. If the
  graceful path does not finish within `grace_s`, or a second signal arrives, the exception is raised where the
  main thread is (a blocked lock acquire is interrupted by it) and the caller kills the workers by PID.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

__all__ = ["Terminated", "SignalDeferral", "deferred_signals", "termination_as_exception", "descendant_pids",
           "kill_pids", "exit_status_for", "become_task_worker"]

_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_HANDLED = (signal.SIGINT, signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every cleanup that runs on Ctrl-C runs on SIGTERM too."""


def exit_status_for(err: KeyboardInterrupt) -> int:
    """The shell's convention, 128 + signal number: 130 for SIGINT, 143 for SIGTERM."""
    return 128 + (signal.SIGTERM if isinstance(err, Terminated) else signal.SIGINT)


def _exception_for(signum: int) -> KeyboardInterrupt:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


@contextlib.contextmanager
def termination_as_exception() -> Iterator[None]:
    """SIGTERM raises `Terminated` in the main thread while the block runs (a no-op in other threads, where Python
    cannot install handlers). After the first SIGINT or SIGTERM further ones are ignored, so a second Ctrl-C does
    not cut short the cleanup the first one started."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in _HANDLED}

    def raise_once(signum: int, _frame: FrameType | None) -> None:
        for sig in _HANDLED:
            signal.signal(sig, signal.SIG_IGN)
        raise _exception_for(signum)

    for sig in _HANDLED:
        signal.signal(sig, raise_once)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# --- workers forked while a deferral is active ------------------------------------------------------------------
_fork_policy_active = False
_forking_parent = 0  # the pid that forked, seen by the child (memory is copied at fork)
_forking_from_main_thread = False
_pdeathsig_from_any_thread = False  # set in a task worker process (`become_task_worker`)


def _before_fork() -> None:
    global _forking_parent, _forking_from_main_thread
    _forking_parent = os.getpid()
    _forking_from_main_thread = threading.current_thread() is threading.main_thread()


def _after_fork_in_child() -> None:
    """Runs in each forked worker: ignore the group's signals, die with the parent."""
    if not _fork_policy_active:
        return
    for sig in _HANDLED:
        signal.signal(sig, signal.SIG_IGN)
    if _forking_from_main_thread or _pdeathsig_from_any_thread:  # it fires when the forking *thread* ends
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != _forking_parent:  # the parent died before prctl took effect
            os._exit(1)


os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


class SignalDeferral:
    """What a `deferred_signals` block saw: the first signal (or None) and whether it had to escalate."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.escalated = False

    def raise_pending(self) -> None:
        """Raise the recorded signal as its exception (after the runtime has been stopped)."""
        if self.signum is not None:
            raise _exception_for(self.signum)


@contextlib.contextmanager
def deferred_signals(grace_s: float = 5.0) -> Iterator[SignalDeferral]:
    """Record SIGINT / SIGTERM instead of raising, so the block can stop what it runs at a safe point and call
    `raise_pending()`; escalate (raise at once, `escalated` set) on a second signal or after `grace_s` seconds.
    Outside the main thread this only sets the fork policy (signals are the main thread's)."""
    global _fork_policy_active
    state = SignalDeferral()
    in_main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.getsignal(sig) for sig in (*_HANDLED, signal.SIGALRM)} if in_main else {}

    def escalate(_signum: int, _frame: FrameType | None) -> None:
        state.escalated = True
        signal.setitimer(signal.ITIMER_REAL, 0)
        for sig in _HANDLED:
            signal.signal(sig, signal.SIG_IGN)  # we are on our way out; let the cleanup finish
        raise _exception_for(state.signum or signal.SIGINT)

    def record(signum: int, frame: FrameType | None) -> None:
        if state.signum is not None:
            escalate(signum, frame)
        state.signum = signum
        signal.setitimer(signal.ITIMER_REAL, grace_s)  # SIGALRM -> escalate if stopping takes too long

    if in_main:
        signal.signal(signal.SIGALRM, escalate)
        for sig in _HANDLED:
            signal.signal(sig, record)
    was_active, _fork_policy_active = _fork_policy_active, True
    try:
        yield state
    finally:
        _fork_policy_active = was_active
        if in_main:
            signal.setitimer(signal.ITIMER_REAL, 0)
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def become_task_worker() -> None:
    """Make this process a worker of a coordinating process (a Dask worker of `spikereg_deploy.sweep.cluster`):
    Ctrl-C reaches the whole process group, but stopping is the coordinator's job (it closes the cluster), so
    SIGINT is ignored here instead of printing a traceback per worker; and the kernel kills this process with
    SIGKILL should the coordinator die (even by SIGKILL). Processes a task forks (Lava's) get the same death
    signal from whichever thread forks them: a worker's task thread lives as long as the worker."""
    global _pdeathsig_from_any_thread
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _pdeathsig_from_any_thread = True
    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:  # the coordinator died before prctl took effect
        os._exit(1)


def descendant_pids(root: int | None = None) -> set[int]:
    """Every live process below `root` (default: this one), from /proc (Linux), so grandchildren count too."""
    root = os.getpid() if root is None else root
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [root]
    while todo:
        for pid in children.get(todo.pop(), []):
            if pid not in found:
                found.add(pid)
                todo.append(pid)
    return found


def kill_pids(pids: set[int]) -> None:
    """SIGKILL each process (the workers ignore SIGINT and SIGTERM by design). multiprocessing reaps its own
    children at exit; waiting here would take that from it."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
