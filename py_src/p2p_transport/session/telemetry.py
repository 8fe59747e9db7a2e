"""What a session measured, kept for the experiment: time series and totals, bounded in memory.

Experimenters report network conditions with their results and exclude sessions by them, so the
record must outlive the game's frame loop: :class:`TelemetryRecorder` keeps timestamped RTT
samples per path, health status transitions, route changes with their reasons, P2P loss estimates
and control-message delivery times, each in a :class:`BoundedLog` that drops its oldest rows when
full and counts how many it dropped. :meth:`~.session.P2PSession.telemetry` adds the session's
totals (per-path packets and bytes, inputs recovered, duplicates, conflicts) and returns one
JSON-serialisable dict, :data:`SCHEMA_VERSION` in its ``schema_version`` field.

Sans-IO: the session calls the ``record_*`` methods with times read from its own clock; nothing
here reads a clock or starts a timer. Every time (``at_ms``) is a millisecond reading of that
clock: ``performance.now()`` in the browser, so ms since the page loaded, not wall-clock time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, Final

from p2p_transport.errors import UsageError
from p2p_transport.protocol.health import HealthStatus
from p2p_transport.protocol.routing import RouteChange

__all__ = [
    "CONTROL_DELIVERY_ROWS",
    "HEALTH_TRANSITION_ROWS",
    "LOSS_SAMPLE_ROWS",
    "ROUTE_CHANGE_ROWS",
    "RTT_COLUMNS",
    "RTT_SAMPLE_ROWS",
    "SAME_FIELDS_AS_VERSION",
    "SCHEMA",
    "SCHEMA_VERSION",
    "BoundedLog",
    "TelemetryRecorder",
]

#: Names the record's format: tools reading a telemetry file check it before anything else.
SCHEMA: Final = "p2p_transport.session.telemetry"
#: Raised whenever a field changes meaning or goes away; adding a field does not raise it.
#: Version 2: RTT rows gained the naive RTT, the peer's hold and the handled-late flag.
#: Version 3: ``state`` is ``shut_down`` once the session was closed (``closed`` now means only
#: that the DataChannel closed and may reopen).
SCHEMA_VERSION: Final = 3
#: The versions whose fields other than ``state`` read the same as this one's.
SAME_FIELDS_AS_VERSION: Final = frozenset({2, 3})
#: The columns of an RTT row: when the sample was taken, the RTT (corrected for the peer's hold
#: on the ping channel), the naive RTT (handling minus sending; the RTT itself on the game channel
#: and the relay), how long the peer held the ping (``None`` where its pong does not say), and
#: whether this side handled the pong late (:data:`~.session.LATE_HANDLING_MS`).
RTT_COLUMNS: Final = ("at_ms", "rtt_ms", "naive_rtt_ms", "peer_hold_ms", "handled_late")
#: RTT samples kept per path: 7200 is one hour at the default two pings a second (500 ms), the
#: length of a long lab session. A row (:data:`RTT_COLUMNS`) is about 170 bytes in CPython and 40
#: in JSON (measured), so both paths together stay under 2.5 MB in memory and 600 kB on disk.
RTT_SAMPLE_ROWS: Final = 7200
#: P2P loss estimates kept: one per ping tick, so also an hour at the default interval.
LOSS_SAMPLE_ROWS: Final = 7200
#: Health transitions kept: a healthy session makes a handful; 1000 is a link flapping between two
#: states every 7 s for an hour (the status is evaluated at most every watchdog tick, 200 ms).
HEALTH_TRANSITION_ROWS: Final = 1000
#: Route changes kept: each switch is two changes (to ``both`` for the overlap, then to the
#: target); 1000 is 500 switches. The router keeps no history of its own: this is the record.
ROUTE_CHANGE_ROWS: Final = 1000
#: Control-message deliveries kept: the control channel's own sample count
#: (:data:`~.control.DELIVERY_SAMPLES`), a few messages per episode for a whole session.
CONTROL_DELIVERY_ROWS: Final = 1000
#: Decimals kept for times in the record: the browser clock resolves 0.1 ms; 0.01 keeps every
#: digit it has and drops float noise from subtractions.
_MS_DECIMALS: Final = 2
#: Decimals kept for loss fractions: 1 in 10^4 is finer than the 120-packet window can tell.
_LOSS_DECIMALS: Final = 4


def _ms(value: float) -> float:
    return round(value, _MS_DECIMALS)


class BoundedLog:
    """Rows in arrival order, at most ``capacity`` of them: the oldest go first, and are counted.

    ``columns`` names each row's fields; :meth:`to_dict` gives them with the rows, the capacity,
    and how many rows were dropped, so a reader can tell a quiet session from a truncated one.
    """

    def __init__(self, columns: Sequence[str], capacity: int) -> None:
        if capacity < 1:
            raise UsageError(f"capacity must be at least 1, got {capacity}")
        self.columns = tuple(columns)
        self._rows: deque[tuple[Any, ...]] = deque(maxlen=capacity)
        #: Rows dropped to make room: the total ever appended is ``len(self) + dropped``.
        self.dropped = 0

    @property
    def capacity(self) -> int:
        return self._rows.maxlen or 0

    def __len__(self) -> int:
        return len(self._rows)

    def append(self, *row: Any) -> None:
        if len(row) != len(self.columns):
            raise UsageError(f"a row has {len(self.columns)} fields, got {len(row)}")
        if len(self._rows) == self.capacity:
            self.dropped += 1
        self._rows.append(row)

    def rows(self) -> list[tuple[Any, ...]]:
        return list(self._rows)

    def records(self) -> list[dict[str, Any]]:
        """The rows as dicts keyed by the columns, oldest first."""
        return [dict(zip(self.columns, row, strict=True)) for row in self._rows]

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns),
            "capacity": self.capacity,
            "dropped": self.dropped,
            "rows": [list(row) for row in self._rows],
        }


class TelemetryRecorder:
    """The time series of one session. The session feeds it; :meth:`to_dict` reads it out.

    ``paths`` names the paths RTT is measured on (the session's ``p2p`` and ``relay``).
    """

    def __init__(self, paths: Iterable[str], started_at_ms: float) -> None:
        self.started_at_ms = started_at_ms
        self.rtt = {path: BoundedLog(RTT_COLUMNS, RTT_SAMPLE_ROWS) for path in paths}
        self.health = BoundedLog(("at_ms", "from", "to"), HEALTH_TRANSITION_ROWS)
        #: The health of the path that carried the game (``path``: ``p2p``, ``relay`` or
        #: ``None`` for neither), which a relay-only game is judged by; ``health`` above is the
        #: DataChannel's own.
        self.game_health = BoundedLog(("at_ms", "path", "from", "to"), HEALTH_TRANSITION_ROWS)
        self.routes = BoundedLog(
            ("at_ms", "previous", "route", "target", "reason"), ROUTE_CHANGE_ROWS
        )
        self.loss = BoundedLog(("at_ms", "loss_estimate"), LOSS_SAMPLE_ROWS)
        self.control = BoundedLog(("acked_at_ms", "delivery_ms"), CONTROL_DELIVERY_ROWS)
        self._health_status: HealthStatus | None = None
        self._game_health: tuple[str | None, HealthStatus] | None = None

    @property
    def health_status(self) -> HealthStatus | None:
        """The status last observed (``None`` before the first observation)."""
        return self._health_status

    def record_rtt(
        self,
        at_ms: float,
        path: str,
        rtt_ms: float,
        naive_rtt_ms: float,
        peer_hold_ms: float | None = None,
        handled_late: bool = False,
    ) -> None:
        """One RTT sample (see :data:`RTT_COLUMNS`)."""
        hold = None if peer_hold_ms is None else _ms(peer_hold_ms)
        self.rtt[path].append(_ms(at_ms), _ms(rtt_ms), _ms(naive_rtt_ms), hold, handled_late)

    def observe_health(self, at_ms: float, status: HealthStatus) -> bool:
        """Note the status just evaluated; record a transition if it changed (the first
        observation is recorded from ``None``). Returns whether it changed."""
        previous = self._health_status
        if status is previous:
            return False
        self._health_status = status
        self.health.append(_ms(at_ms), None if previous is None else previous.value, status.value)
        return True

    def observe_game_health(self, at_ms: float, path: str | None, status: HealthStatus) -> bool:
        """The same for the path that carries the game: a row when the path or its status
        changed. Returns whether one did."""
        previous = self._game_health
        if previous == (path, status):
            return False
        self._game_health = (path, status)
        before = None if previous is None else previous[1].value
        self.game_health.append(_ms(at_ms), path, before, status.value)
        return True

    def record_route_change(self, change: RouteChange) -> None:
        """A :meth:`~.routing.Router.subscribe` callback."""
        self.routes.append(*change.as_dict().values())

    def record_loss(self, at_ms: float, loss_estimate: float | None) -> None:
        """One P2P loss estimate; ``None`` (too few packets to tell) is not recorded."""
        if loss_estimate is not None:
            self.loss.append(_ms(at_ms), round(loss_estimate, _LOSS_DECIMALS))

    def record_control_delivery(self, acked_at_ms: float, delivery_ms: float) -> None:
        self.control.append(_ms(acked_at_ms), _ms(delivery_ms))

    def to_dict(self, rtt_interval_ms: float | None = None) -> dict[str, Any]:
        """The series as plain JSON-ready data. With ``rtt_interval_ms`` (the ping interval),
        each RTT log also says how long its full ring covers."""
        rtt: dict[str, Any] = {}
        for path, log in self.rtt.items():
            entry = log.to_dict()
            if rtt_interval_ms is not None:
                entry["covers_ms"] = log.capacity * rtt_interval_ms
            rtt[path] = entry
        return {
            "rtt": rtt,
            "health_transitions": self.health.to_dict(),
            "game_health_transitions": self.game_health.to_dict(),
            "route_changes": self.routes.to_dict(),
            "loss_estimates": self.loss.to_dict(),
            "control_deliveries": self.control.to_dict(),
        }
