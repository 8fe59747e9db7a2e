"""The browser edge: the only subpackage that imports ``js`` and ``pyodide.ffi``.

:mod:`~p2p_transport.browser.adapters` turns browser objects into the core's channels and
scheduler; :mod:`~p2p_transport.browser.transport` is :class:`BrowserTransport`, one tab's end of
the connection; ``p2p_shim.js`` (package data, :func:`shim_path`) is the
JavaScript half a page loads.
"""

from pathlib import Path

__all__ = ["SHIM_FILE_NAME", "shim_path"]

SHIM_FILE_NAME = "p2p_shim.js"


def shim_path() -> Path:
    """The installed ``p2p_shim.js``, for a server to serve beside the game page (the reference
    server serves it at ``/static/p2p_shim.js``), so a game never copies it."""
    return Path(__file__).with_name(SHIM_FILE_NAME)
