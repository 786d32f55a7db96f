"""The results database: every finished pair is one committed row, so a killed run loses nothing it finished.

Rows are keyed by (model key, settings key, pair name). The model key is the network's model fingerprint plus a hash
of the model file's bytes (a retrained model with the same architecture is a different model); the settings key is
a hash of what else decides a pair's numbers (data source, split, grid, seed, engine, tag). A rerun asks which keys
are finished and submits only the rest; a failed pair is stored with its one-line error and retried by the next run.

Storage is SQLAlchemy Core (installed with Optuna): a path is an SQLite file through Python's own `sqlite3` driver,
and a URL (`postgresql://...`, `mysql://...`) a database server, with the same tables. Only the coordinating process
writes, one transaction per pair, so a reader sees a pair whole or not at all; workers never touch the database.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SpikeRegError

__all__ = ["ResultsDB", "PairResult", "FORMAT", "VERSION", "MEMORY", "database_url", "ok_rows"]

FORMAT = "spikereg-results"
MEMORY = ":memory:"
VERSION = 1


@dataclass(frozen=True)
class PairResult:
    """One model on one pair: the metrics (Dice, ...) and layer counts of an `ok` run, or a failed run's error."""

    model_key: str
    settings_key: str
    pair: str
    pair_index: int
    status: str  # "ok" or "failed"
    metrics: dict[str, Any]
    counts: dict[str, dict[str, Any]] | None  # layer -> LayerCounts fields; None for a model without events
    input_shape: tuple[int, ...]
    error: str | None = None
    seconds: float = 0.0
    worker: str = ""


def database_url(target: str) -> str:
    """An SQLAlchemy URL for what the user gave: a URL as it is, `:memory:` a database that lives as long as this
    process (a run that keeps nothing), anything else a path to an SQLite file."""
    if target == MEMORY:
        return "sqlite://"
    if "://" in target:
        return target
    return "sqlite:///" + os.path.abspath(target)


def sqlite_path(url: str) -> Path | None:
    """The file of an SQLite URL made by `database_url` (None for a server or an in-memory database)."""
    return Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else None


def check_sqlite_target(path: Path, shown: str) -> None:
    """A file we cannot create or write is refused before any pair runs (SQLite would fail at the first commit)."""
    if path.is_dir():
        raise SpikeRegError("results database is a folder; give a file path or a database URL", shown)
    folder = path.parent
    if not folder.is_dir():
        raise SpikeRegError(f"results database folder {folder} does not exist", shown)
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise SpikeRegError("results database is not writable", shown)
    if not os.access(folder, os.W_OK | os.X_OK):  # SQLite writes its journal beside the file
        raise SpikeRegError(f"results database folder {folder} is not writable (SQLite needs its journal there)", shown)


class ResultsDB:
    """Pair results of any number of models and settings in one database (tables `meta` and `pair_results`)."""

    def __init__(self, target: str | os.PathLike[str]) -> None:
        import sqlalchemy as sa

        self.target = str(target)
        url = database_url(self.target)
        if (path := sqlite_path(url)) is not None:
            check_sqlite_target(path, self.target)
        try:
            self.engine = sa.create_engine(url, future=True)
        except Exception as err:  # an unknown dialect or a driver that is not installed
            raise SpikeRegError(f"cannot use results database URL ({type(err).__name__}: {err})", self.target) from None
        meta = sa.MetaData()
        self.meta_table = sa.Table("spikereg_meta", meta, sa.Column("key", sa.String(64), primary_key=True),
                                   sa.Column("value", sa.Text, nullable=False))
        self.table = sa.Table(
            "pair_results", meta,
            sa.Column("model_key", sa.String(80), primary_key=True),
            sa.Column("settings_key", sa.String(80), primary_key=True),
            sa.Column("pair", sa.String(400), primary_key=True),
            sa.Column("pair_index", sa.Integer, nullable=False),
            sa.Column("status", sa.String(8), nullable=False),
            sa.Column("metrics", sa.Text, nullable=False),
            sa.Column("counts", sa.Text),
            sa.Column("input_shape", sa.Text, nullable=False),
            sa.Column("error", sa.Text),
            sa.Column("seconds", sa.Float, nullable=False),
            sa.Column("worker", sa.String(200), nullable=False),
            sa.Column("finished_at", sa.Float, nullable=False),
        )
        self._metadata = meta
        self._open()

    def _open(self) -> None:
        """Create the tables on first use, or check that an existing database is ours and of this version."""
        import sqlalchemy as sa

        try:
            with self.engine.begin() as conn:
                self._metadata.create_all(conn)
                rows = dict(conn.execute(sa.select(self.meta_table.c.key, self.meta_table.c.value)).all())
                if not rows:
                    conn.execute(sa.insert(self.meta_table), [{"key": "format", "value": FORMAT},
                                                               {"key": "version", "value": str(VERSION)}])
                    return
        except sa.exc.SQLAlchemyError as err:
            raise SpikeRegError(f"cannot open results database ({driver_reason(err)})", self.target) from None
        if rows.get("format") != FORMAT or rows.get("version") != str(VERSION):
            raise SpikeRegError(f"not a {FORMAT} v{VERSION} database (meta says format {rows.get('format')!r}, "
                                f"version {rows.get('version')!r})", self.target)

    def finished(self, model_key: str, settings_key: str) -> set[str]:
        """Names of the pairs this model has finished (status ok) under these settings."""
        import sqlalchemy as sa

        t = self.table
        query = sa.select(t.c.pair).where(t.c.model_key == model_key, t.c.settings_key == settings_key,
                                          t.c.status == "ok")
        with self._connection() as conn:
            return {row[0] for row in conn.execute(query)}

    def record(self, result: PairResult) -> None:
        """Store one pair's result in its own transaction (replacing an earlier failure of the same pair)."""
        import sqlalchemy as sa

        t = self.table
        row = {"model_key": result.model_key, "settings_key": result.settings_key, "pair": result.pair,
               "pair_index": int(result.pair_index), "status": result.status,
               "metrics": json.dumps(result.metrics, sort_keys=True),
               "counts": None if result.counts is None else json.dumps(result.counts, sort_keys=True),
               "input_shape": json.dumps(list(result.input_shape)), "error": result.error,
               "seconds": float(result.seconds), "worker": result.worker, "finished_at": time.time()}
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.delete(t).where(t.c.model_key == result.model_key,
                                                t.c.settings_key == result.settings_key, t.c.pair == result.pair))
                conn.execute(sa.insert(t), [row])
        except sa.exc.SQLAlchemyError as err:
            raise SpikeRegError(f"cannot write to results database ({driver_reason(err)})", self.target) from None

    def results(self, model_key: str, settings_key: str, pairs: Iterable[str] | None = None) -> list[PairResult]:
        """Every stored result of a model under these settings (only `pairs` when given), in pair-index order."""
        import sqlalchemy as sa

        t = self.table
        query = sa.select(t).where(t.c.model_key == model_key, t.c.settings_key == settings_key)
        with self._connection() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        wanted = None if pairs is None else set(pairs)
        out = [PairResult(r["model_key"], r["settings_key"], r["pair"], r["pair_index"], r["status"],
                          json.loads(r["metrics"]), None if r["counts"] is None else json.loads(r["counts"]),
                          tuple(json.loads(r["input_shape"])), r["error"], r["seconds"], r["worker"])
               for r in rows if wanted is None or r["pair"] in wanted]
        return sorted(out, key=lambda r: (r.pair_index, r.pair))

    def count(self) -> int:
        import sqlalchemy as sa

        with self._connection() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(self.table)).scalar_one())

    def _connection(self) -> Any:
        import sqlalchemy as sa

        try:
            return self.engine.connect()
        except sa.exc.SQLAlchemyError as err:
            raise SpikeRegError(f"cannot read results database ({driver_reason(err)})", self.target) from None

    def close(self) -> None:
        self.engine.dispose()


def driver_reason(err: Exception) -> str:
    """The driver's own message, on one line, without SQLAlchemy's statement dump and documentation link."""
    original = getattr(err, "orig", None) or err
    return " ".join(str(original).split())[:300]


def ok_rows(results: Sequence[PairResult]) -> list[dict[str, Any]]:
    """The per-pair metric rows of the finished pairs, as `evaluation.aggregate` takes them."""
    return [{"pair": r.pair, **r.metrics} for r in results if r.status == "ok"]
