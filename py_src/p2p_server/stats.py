"""The server's counters, and what ``/stats`` shows an operator: per process, since it started,
and the relay's rates over the last few seconds."""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Final

__all__ = ["ServerStats"]

#: Rates are averaged over this many one-second samples.
RATE_WINDOW_S: Final = 5


@dataclass
class ServerStats:
    """Counters for tests and the ``/stats`` route. Mutated only on the server's event loop."""

    #: Connections accepted since start, and open now.
    connections: int = 0
    connected: int = 0
    joins: int = 0
    rooms_open: int = 0
    #: Spectators in rooms now, and the joins that brought them since start (also in ``joins``).
    spectators: int = 0
    spectator_joins: int = 0
    signals_relayed: int = 0
    relay_messages: int = 0
    # Signals plus relay messages forwarded to a peer.
    events_relayed: int = 0
    # Payload bytes of forwarded ``relay`` messages (signaling is not counted: it is JSON).
    bytes_relayed: int = 0
    #: Packets of the spectator feed written to spectators (not in ``relay_messages``: those
    #: went to players).
    spectator_messages: int = 0
    #: Inputs the spectator feed kept for its rooms (see spectator_feed; repeats not counted).
    inputs_fed: int = 0
    #: Spectators sent a room's kept inputs: at their join, or after their queue was full.
    spectator_catch_ups: int = 0
    #: Lean relay sockets open now, and the relay messages written to one (the rest went to
    #: their peer as Socket.IO events).
    relay_sockets_open: int = 0
    relay_socket_messages: int = 0
    # Events refused with an ``error`` reply (malformed, oversized, before join, room full...).
    errors: int = 0
    # Well-formed signals/relays that arrived while the sender had no peer (the peer had just left,
    # or had not joined yet): a normal race, so dropped without an error reply.
    dropped_no_peer: int = 0
    # Telemetry records written to the data directory (see telemetry_store), and their bytes.
    telemetry_saved: int = 0
    telemetry_bytes: int = 0
    #: Inputs written to the rooms' input records (see input_recorder; repeats are not counted).
    inputs_recorded: int = 0
    #: Input records (0x30) read for the rooms' records: what players of rooms routed P2P send
    #: the server of their confirmed inputs (forwarded to no one).
    input_uploads: int = 0
    # --- isolation (see limits and door) ---
    #: Connections refused at the door (any reason: see ``refusals``).
    connections_refused: int = 0
    #: Every connection refused and every client dropped, by reason: at the door
    #: ``address_rate``, ``address_open``, ``address_unjoined``, ``server_full``; sockets closed
    #: ``evicted_unjoined`` (to make room) or at ``join_timeout``; binary events refused at their
    #: header (``attachments``, ``binary_header``); clients dropped for ``malformed`` traffic,
    #: ``rate_limited``, ``slow_reader``, ``replaced``; lean relay sockets refused for a
    #: ``bad_ticket`` or closed for an ``oversized_frame``; joins refused ``room_full``,
    #: ``unauthorized``, ``room_size`` (another number of players than the room's) or
    #: ``spectators_full``; a spectator's relayed packets refused as ``spectator_input``;
    #: telemetry parts refused ``telemetry_busy``; relayed packets not recorded
    #: for a ``record_full`` room, as ``record_malformed``, or as ``record_failed`` to write;
    #: input records dropped as ``record_off`` by a server that keeps no records; inputs not
    #: kept for a room's spectators, its feed being full (``spectator_feed_full``).
    refusals: dict[str, int] = field(default_factory=dict)
    #: Events dropped because their sender was over its rate limits.
    throttled: int = 0
    #: Packets not queued to a client that was not reading them.
    dropped_slow_reader: int = 0
    #: Clients disconnected: flooding past their limits, not reading, not joining in time, or
    #: sending malformed traffic.
    disconnected_flooding: int = 0
    disconnected_slow_reader: int = 0
    join_timeouts: int = 0
    disconnected_malformed: int = 0
    #: Engine.IO/Socket.IO messages that could not be read.
    malformed: int = 0
    # --- tokens ---
    #: Joins refused for a missing, forged, expired or mismatched token.
    token_refusals: int = 0
    #: Slots taken back by their token holder from a stale connection.
    slots_reclaimed: int = 0
    #: Gauges read when the snapshot is taken (what the server holds now: sockets that have not
    #: joined, addresses, binary headers waiting for their attachment, unfinished telemetry).
    gauges: Callable[[], dict[str, int]] = field(default=lambda: {}, repr=False)
    _samples: deque[tuple[float, int, int]] = field(
        default_factory=lambda: deque(maxlen=RATE_WINDOW_S + 1), repr=False
    )

    def refuse(self, reason: str) -> None:
        self.refusals[reason] = self.refusals.get(reason, 0) + 1

    def sample(self, now: float | None = None) -> None:
        """Called about once a second: remembers the relay counters for the rates."""
        moment = time.monotonic() if now is None else now
        self._samples.append((moment, self.relay_messages, self.bytes_relayed))

    def rates(self) -> dict[str, float]:
        if len(self._samples) < 2:
            return {"relay_messages_per_s": 0.0, "relay_bytes_per_s": 0.0}
        (t0, m0, b0), (t1, m1, b1) = self._samples[0], self._samples[-1]
        span = max(t1 - t0, 1e-9)
        return {
            "relay_messages_per_s": round((m1 - m0) / span, 1),
            "relay_bytes_per_s": round((b1 - b0) / span, 1),
        }

    def snapshot(self) -> dict[str, Any]:
        counters = {f.name: getattr(self, f.name) for f in fields(self) if f.repr}
        counters["refusals"] = dict(sorted(self.refusals.items()))
        return {"pid": os.getpid(), **counters, **self.gauges(), **self.rates()}
