"""Where a study lives: an embedded journal file by default, a database URL for many machines.

``open_storage(None, directory)`` is the embedded default: Optuna's journal storage on the
file ``<directory>/study.journal``, which several worker processes on one machine share
safely (appends under a file lock; no server, no "database is locked"), with heartbeats
(:mod:`autodata.tune._journal`). A path without ``://`` is a journal file elsewhere.
A URL (``postgresql://user:password@host/db``, ``postgresql+psycopg2://...``, ``mysql://``,
``sqlite:///``) is an Optuna ``RDBStorage`` with a heartbeat, for workers on many machines.

Either way a worker killed in the middle of a trial (``kill -9``, a lost machine) leaves a
trial whose heartbeat stops; after ``grace_period`` seconds the next worker that starts a
trial marks it failed and re-queues its parameters (Optuna's
``RetryHeartbeatStaleTrialCallback``, at most ``max_retry`` times).

Errors name the storage without its password: :func:`redact_url`.

Example:
    >>> redact_url("postgresql://me:secret@db.example/optuna")
    'postgresql://me:***@db.example/optuna'
"""
from __future__ import annotations

import contextlib
import inspect
import os
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autodata._imports import MissingExtraError, require

__all__ = ["RDB_SCHEMES", "StorageSettings", "open_storage", "redact_url"]

JOURNAL_NAME = "study.journal"
_PASSWORD = re.compile(r"(?P<head>^[A-Za-z][A-Za-z0-9+.-]*://[^:/@?#]*:)(?P<password>[^@]*)(?P<tail>@)")


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (also for a URL that does not parse)."""
    return _PASSWORD.sub(r"\g<head>***\g<tail>", url, count=1)


@dataclass(frozen=True)
class StorageSettings:
    """How stale trials are found and retried.

    Attributes:
        heartbeat_interval: seconds between heartbeats of a running trial.
        grace_period: seconds without a heartbeat before a running trial is failed
            (``None``: twice the interval).
        max_retry: how often a stale trial's parameters are re-queued.
    """

    heartbeat_interval: int = 10
    grace_period: int | None = 30
    max_retry: int = 2

    def __post_init__(self) -> None:
        for name in ("heartbeat_interval", "max_retry"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "heartbeat_interval" else 0):
                raise ValueError(f"{name} must be an integer >= {1 if name == 'heartbeat_interval' else 0}, but got {value!r}.")
        if self.grace_period is not None and (isinstance(self.grace_period, bool) or not isinstance(self.grace_period, int)
                                              or self.grace_period <= self.heartbeat_interval):
            raise ValueError(f"grace_period must be an integer > heartbeat_interval ({self.heartbeat_interval}) or None, "
                             f"but got {self.grace_period!r}.")


def _retry_callback(settings: StorageSettings) -> Any:
    optuna = require("optuna", extra="tune")
    retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or optuna.storages.RetryFailedTrialCallback
    # The retried trial trains from epoch 1 again, so it reports its own intermediate values.
    with _no_experimental_warning(optuna):
        return retry(max_retry=settings.max_retry, inherit_intermediate_values=False)


@contextlib.contextmanager
def _no_experimental_warning(optuna: Any) -> Iterator[None]:
    """Heartbeats and retries are "experimental" in Optuna; autodata relies on them on purpose."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def _journal(spec: str, settings: StorageSettings) -> Any:
    require("optuna", extra="tune", purpose="the study storage")
    from autodata.tune._journal import HeartbeatJournalStorage

    return HeartbeatJournalStorage(
        spec, heartbeat_interval=settings.heartbeat_interval, grace_period=settings.grace_period,
        stale_trial_callback=_retry_callback(settings),
    )


def _with_driver(url: str) -> str:
    """``postgresql://`` (or ``postgres://``) with the PostgreSQL driver that is installed: psycopg, else psycopg2.

    SQLAlchemy's default driver for ``postgresql://`` changed from psycopg2 to psycopg (3) in
    2.1; a URL that names its driver (``postgresql+psycopg2://``) is left as it is.
    """
    scheme, rest = url.split("://", 1)
    if scheme.lower() not in ("postgresql", "postgres"):
        return url
    import importlib.util

    for driver in ("psycopg", "psycopg2"):
        if importlib.util.find_spec(driver) is not None:
            return f"postgresql+{driver}://{rest}"
    raise MissingExtraError(f"the storage {redact_url(url)!r} needs a PostgreSQL driver, but none is installed; "
                            f"install one with pip install psycopg2-binary (or pip install 'psycopg[binary]').")


def _rdb(url: str, settings: StorageSettings) -> Any:
    optuna = require("optuna", extra="tune", purpose="the study storage")
    sqlalchemy = require("sqlalchemy", extra="tune", purpose="database storages")
    shown = redact_url(url)
    url = _with_driver(url)
    try:
        parsed = sqlalchemy.engine.make_url(url)
        parsed.port  # noqa: B018 (a port that is not a number fails here, not later)
    except (sqlalchemy.exc.ArgumentError, ValueError, TypeError):
        raise ValueError(f"storage must be a database URL such as postgresql://user:password@host:5432/db, "
                         f"but got {shown!r}, which does not parse.") from None
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "postgresql":
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    retry = _retry_callback(settings)
    keyword = ("heartbeat_stale_trial_callback"
               if "heartbeat_stale_trial_callback" in inspect.signature(optuna.storages.RDBStorage).parameters
               else "failed_trial_callback")
    try:
        with _no_experimental_warning(optuna):
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine_kwargs, heartbeat_interval=settings.heartbeat_interval,
                grace_period=settings.grace_period, **{keyword: retry},
            )
    except ImportError as err:  # Optuna reports a missing driver as an ImportError of its own
        raise MissingExtraError(f"the storage {shown!r} needs a database driver that is not installed ({err}); "
                                f"install it, e.g. pip install psycopg2-binary for PostgreSQL.") from None
    except sqlalchemy.exc.ArgumentError as err:
        raise ValueError(f"storage {shown!r} is not a usable database URL: {_scrub(str(err), parsed)}") from None
    except (sqlalchemy.exc.SQLAlchemyError, ValueError, TypeError, OSError) as err:
        detail = _scrub(str(getattr(err, "orig", None) or err), parsed)
        raise ValueError(f"storage {shown!r} could not be reached or opened: {detail} "
                         f"(is the server running and the URL right?)") from None


def _scrub(message: str, parsed: Any) -> str:
    """The first line of a driver's message, without the password should it quote it."""
    line = message.strip().splitlines()[0] if message.strip() else "unknown error"
    password = parsed.password
    return line.replace(str(password), "***") if password else line


# URL scheme (before any "+driver") -> opener; a spec without "://" is a journal file.
RDB_SCHEMES: dict[str, Callable[[str, StorageSettings], Any]] = {
    "postgresql": _rdb, "postgres": _rdb, "mysql": _rdb, "sqlite": _rdb,
}


def storage_location(storage: str | os.PathLike[str] | None, directory: str | os.PathLike[str] | None) -> str:
    """The spec a worker opens: ``storage`` itself, or the default journal in ``directory``."""
    if storage is None or storage == "":
        if directory is None:
            raise ValueError("storage must be given when there is no study directory (--out), but got neither.")
        return os.fspath(Path(directory) / JOURNAL_NAME)
    return os.fspath(storage)


def open_storage(
    storage: str | os.PathLike[str] | None,
    directory: str | os.PathLike[str] | None = None,
    settings: StorageSettings | None = None,
) -> Any:
    """Open the study storage (see the module docstring).

    Args:
        storage: ``None`` (the journal in ``directory``), a journal file path, or a database URL.
        directory: the study's directory (for the default journal).
        settings: heartbeat and retry settings.
    """
    settings = settings or StorageSettings()
    spec = storage_location(storage, directory)
    if "://" not in spec:
        if os.path.isdir(spec):
            raise ValueError(f"storage must be a journal file or a database URL, but got the folder {spec!r}; "
                             f"name a file in it, e.g. {os.path.join(spec, JOURNAL_NAME)!r}.")
        return _journal(spec, settings)
    scheme = spec.split("://", 1)[0].split("+", 1)[0].lower()
    if scheme not in RDB_SCHEMES:
        raise ValueError(f"storage must be a journal file path or a URL with scheme {sorted(RDB_SCHEMES)}, "
                         f"but got {redact_url(spec)!r}.")
    return RDB_SCHEMES[scheme](spec, settings)
