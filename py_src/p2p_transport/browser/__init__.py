"""The browser edge: the only subpackage that imports ``js`` and ``pyodide.ffi``.

:mod:`~p2p_transport.browser.pairing` decides (sans-IO, no ``js``: pairing or resuming, a peer
that leaves, reconnection); :mod:`~p2p_transport.browser.adapters`,
:mod:`~p2p_transport.browser.server_sockets` and :mod:`~p2p_transport.browser.rtc_connection`
hold the browser's objects, one adapter each; :mod:`~p2p_transport.browser.transport` is
:class:`BrowserTransport`, one tab's end of the connection, which joins them; ``p2p_shim.js``
(package data, :func:`shim_path`) is the JavaScript half a page loads.
"""

from pathlib import Path

__all__ = ["SHIM_FILE_NAME", "shim_path"]

SHIM_FILE_NAME = "p2p_shim.js"


def shim_path() -> Path:
    """The installed ``p2p_shim.js``, for a server to serve beside the game page (the reference
    server serves it at ``/static/p2p_shim.js``), so a game never copies it."""
    return Path(__file__).with_name(SHIM_FILE_NAME)
