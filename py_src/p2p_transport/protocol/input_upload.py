"""The relay server's record of a room routed P2P: the local inputs the peer has confirmed, sent
to the server about once a second in an input record (0x30), which it keeps and forwards to no
one.

The server records every input the relay carries (``--record-dir``); while the route leaves the
relay out, it would see none. So the inputs the peer has acknowledged (it holds them: they are
confirmed, and will not change) and that have not gone to the server yet are taken from the acked
sender on each tick of the session's resend timer (every 100 ms, so they are taken long before
they leave its 64 kept inputs) and go out together once :data:`UPLOAD_INTERVAL_MS` has passed:
at most :data:`~p2p_transport.wire.codec.MAX_INPUTS_PER_RECORD` a packet, the rest in the next.

Inputs acknowledged while the route has carried every input on the relay since before the
previous tick reached the server on the relay and are not sent again: an input pending when the
route moved to the relay rode the next packet there, and one acknowledged before that packet went
out was acknowledged within a tick of the move. What this leaves out is the input of a peer that
never acknowledges: a version-1 peer (a deployed JavaScript one), or any peer with acked inputs
off; then nothing is sent, as nothing is known to be confirmed. Inputs sent before the
negotiation are covered by the first ack, as far back as the acked sender keeps them (its last
64). The server takes each input once, whichever way it came.

Sans-IO: :meth:`InputUpload.collect` and :meth:`InputUpload.packet` are called by the session's
input path, which sends the packet on the relay and tells :meth:`InputUpload.sent`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Final

from p2p_transport.wire.codec import MAX_INPUTS_PER_RECORD, encode_input_record

__all__ = ["MAX_UPLOAD_BACKLOG", "UPLOAD_INTERVAL_MS", "InputUpload", "UploadCounters"]

#: Confirmed inputs go to the server once a second: the server flushes its records once a second
#: too, so a record is at most about two seconds behind what both players confirmed, and a 60 Hz
#: game's second of inputs (60, 305 bytes) is one packet a second on the relay instead of 60.
UPLOAD_INTERVAL_MS: Final = 1000.0
#: Confirmed inputs kept while the relay is closed: 16 full records, 68 s of a 60 Hz game. The
#: oldest beyond it are dropped (counted), so a long relay outage costs bounded memory.
MAX_UPLOAD_BACKLOG: Final = 16 * MAX_INPUTS_PER_RECORD
#: Ticks the route must have carried every input on the relay, unchanged, before what is
#: acknowledged is taken as having reached the server that way (see the module's docstring).
_RELAY_STEADY_TICKS: Final = 2


@dataclass(slots=True)
class UploadCounters:
    #: Input records the relay took.
    input_uploads: int = 0
    #: The inputs in them.
    inputs_uploaded: int = 0
    #: Confirmed inputs dropped at :data:`MAX_UPLOAD_BACKLOG` while the relay could not take them.
    input_upload_dropped: int = 0


class InputUpload:
    """The confirmed local inputs of ``player_index`` that the server has not been sent yet."""

    def __init__(self, player_index: int) -> None:
        encode_input_record(player_index, ())  # validates player_index
        self.player_index = player_index
        self.counters = UploadCounters()
        self._backlog: deque[tuple[int, int]] = deque()
        # The newest frame taken (sent, waiting, or carried by the relay).
        self._through = -1
        # Ticks the route has carried every input on the relay without a change; a route
        # fixed on the relay from the start has always done so.
        self._relay_ticks = _RELAY_STEADY_TICKS
        self._route_changes = 0
        self._next_due_ms = float("-inf")
        # The inputs in the last packet built, taken out once the relay took it.
        self._offered = 0

    @property
    def backlog(self) -> int:
        """Confirmed inputs waiting to be sent."""
        return len(self._backlog)

    def collect(
        self,
        recorded: Sequence[tuple[int, int]],
        acked_through: int | None,
        relay_carries_all: bool,
        route_changes: int,
    ) -> None:
        """Take what the peer acknowledged since the last call: ``recorded`` is the acked
        sender's kept inputs (oldest first), ``acked_through`` its peer's ack; the route
        ``relay_carries_all`` now, and the router has changed it ``route_changes`` times."""
        if relay_carries_all and route_changes == self._route_changes:
            self._relay_ticks = min(self._relay_ticks + 1, _RELAY_STEADY_TICKS)
        else:
            self._relay_ticks = 0
        self._route_changes = route_changes
        through = self._through
        if acked_through is None or acked_through <= through:
            return
        self._through = acked_through
        if self._relay_ticks >= _RELAY_STEADY_TICKS:
            return
        backlog = self._backlog
        backlog.extend(entry for entry in recorded if through < entry[0] <= acked_through)
        excess = len(backlog) - MAX_UPLOAD_BACKLOG
        if excess > 0:
            for _ in range(excess):
                backlog.popleft()
            self.counters.input_upload_dropped += excess

    def packet(self, now_ms: float, final: bool = False) -> bytes | None:
        """The next input record, once :data:`UPLOAD_INTERVAL_MS` has passed since the last
        (``final``: now, the session is closing), or ``None``."""
        if not self._backlog or (now_ms < self._next_due_ms and not final):
            return None
        inputs = tuple(islice(self._backlog, MAX_INPUTS_PER_RECORD))
        self._offered = len(inputs)
        return encode_input_record(self.player_index, inputs)

    def sent(self, now_ms: float) -> None:
        """The relay took the last :meth:`packet`: its inputs are done."""
        count = self._offered
        for _ in range(count):
            self._backlog.popleft()
        self._offered = 0
        counters = self.counters
        counters.input_uploads += 1
        counters.inputs_uploaded += count
        self._next_due_ms = now_ms + UPLOAD_INTERVAL_MS
