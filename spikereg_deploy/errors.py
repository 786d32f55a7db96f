"""User-facing errors and the one place that turns them into exit status 2.

A user's mistake (a bad file, a shape the network cannot take) must end in one line that names the file and the
problem, never in a traceback; programming errors still raise normally so they are not hidden.
"""
from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

EXIT_USER_ERROR = 2

F = TypeVar("F", bound=Callable[..., int | None])


class SpikeRegError(Exception):
    """A problem with the user's input: printed as one line, exit status 2."""

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None) -> None:
        self.path = None if path is None else str(path)
        self.message = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class NetFormatError(SpikeRegError):
    """A `.net` file that is not a valid spikereg/NetX network."""


class CheckpointError(SpikeRegError):
    """A checkpoint that cannot rebuild the model it claims to hold."""


class DataError(SpikeRegError):
    """An image, label map or pair list that cannot be used."""


def cli_entry(func: F) -> Callable[..., int]:
    """Wrap a CLI `main` so that SpikeRegError becomes one line on stderr and exit status 2, and Ctrl-C / SIGTERM
    one line and 130 / 143 after every `with` block has cleaned up (SIGTERM is raised as `signals.Terminated`)."""

    @functools.wraps(func)
    def wrapper(*args: object, **kwargs: object) -> int:
        from .signals import Terminated, exit_status_for, termination_as_exception

        prog = Path(sys.argv[0]).name or "spikereg"
        try:
            with termination_as_exception():
                result = func(*args, **kwargs)
        except SpikeRegError as err:
            print(f"{prog}: error: {err}", file=sys.stderr)
            return EXIT_USER_ERROR
        except KeyboardInterrupt as err:
            print(f"{prog}: {'terminated' if isinstance(err, Terminated) else 'interrupted'}", file=sys.stderr)
            return exit_status_for(err)
        return 0 if result is None else int(result)

    return wrapper


def read_json_object(path: str | os.PathLike[str], what: str) -> dict:
    """A user's JSON file as a dict, or a one-line SpikeRegError naming the file (`what`: "report", "mapping")."""
    import json

    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpikeRegError(f"no such {what} file", p) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SpikeRegError(f"not a JSON {what} ({type(err).__name__})", p) from None
    if not isinstance(data, dict):
        raise SpikeRegError(f"not a spikereg {what}: the top level is not a JSON object", p)
    return data


def read_toml(path: str | os.PathLike[str], what: str) -> dict:
    """A user's TOML file as a dict (tomli: Python 3.10 has no tomllib), or a one-line SpikeRegError."""
    import tomli

    p = Path(path)
    try:
        return tomli.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpikeRegError(f"no such {what} file", p) from None
    except tomli.TOMLDecodeError as err:
        raise SpikeRegError(f"not valid TOML ({err})", p) from None
    except (OSError, UnicodeDecodeError) as err:
        raise SpikeRegError(f"cannot read {what}: {err}", p) from None
