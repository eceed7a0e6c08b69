"""optuna-dashboard on loopback for a study's storage, started and stopped from Python.

Users open a study with the dashboard's own command (``pip install optuna-dashboard``)::

    optuna-dashboard runs/study/study.journal         # the embedded journal storage
    optuna-dashboard postgresql://user:pw@host/db     # a shared database

and browse http://127.0.0.1:8080. :func:`serve_dashboard` does the same inside a process
(tests, notebooks): it serves the dashboard's WSGI app on ``host:port`` in a thread and stops
it when the ``with`` block ends.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from autodata._imports import require

__all__ = ["serve_dashboard"]


@contextlib.contextmanager
def serve_dashboard(storage: Any, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve optuna-dashboard for ``storage`` (an Optuna storage or URL); yields its base URL.

    Args:
        storage: what ``optuna_dashboard.wsgi`` takes: a storage object, a URL or a journal file.
        host: the address to bind; keep the default loopback unless the network is trusted.
        port: the port (0: any free one).
    """
    dashboard = require("optuna_dashboard", extra="tune", purpose="the dashboard")
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class _Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
            pass

    server = make_server(host, port, dashboard.wsgi(storage), handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, name="optuna-dashboard", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
