"""Whether the page is hidden (in a background tab, minimised), as the browser says it with
``visibilitychange``: a game on the rollback layer passes it on to
:meth:`RollbackSession.set_hidden <p2p_transport.rollback.session.RollbackSession.set_hidden>`,
since a hidden tab's timers wake about once a second."""

from __future__ import annotations

from collections.abc import Callable

import js

from p2p_transport._guard import call_guarded
from p2p_transport.browser.adapters import ProxyRegistry

__all__ = ["PageVisibility"]


class PageVisibility:
    """Calls ``on_change(hidden)`` whenever the page's visibility changes, until :meth:`close`."""

    def __init__(self, on_change: Callable[[bool], object]) -> None:
        self._on_change = on_change
        self._proxies = ProxyRegistry()
        self._handler = self._proxies.create(lambda *_: self._changed())
        js.document.addEventListener("visibilitychange", self._handler)
        #: ``on_change`` raised (logged; the next change is told all the same).
        self.callback_errors = 0

    @property
    def hidden(self) -> bool:
        return str(js.document.visibilityState) == "hidden"

    def _changed(self) -> None:
        if not call_guarded(self._on_change, self.hidden, what="on_change (visibility)"):
            self.callback_errors += 1

    def close(self) -> None:
        """Stop listening. Idempotent."""
        if self._proxies.live:
            js.document.removeEventListener("visibilitychange", self._handler)
            self._proxies.destroy_all()
