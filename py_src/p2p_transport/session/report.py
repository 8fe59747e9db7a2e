"""What a session reports: :meth:`SessionReport.stats` (flat counters and figures, for a page or a
log line) and :meth:`SessionReport.telemetry` (the record an experiment keeps).

Both only read: calling them as often as a page likes changes no counter, no status and no record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from p2p_transport.protocol.health import carrying_health
from p2p_transport.protocol.routing import Link
from p2p_transport.session.config import SessionConfig
from p2p_transport.session.edge import SessionState
from p2p_transport.session.parts import SessionParts
from p2p_transport.session.telemetry import SCHEMA, SCHEMA_VERSION

__all__ = ["SessionReport"]


class SessionReport:
    """Reads one session's pieces into ``stats()`` and ``telemetry()``; ``state``, a function
    given by the session, tells its :class:`~.edge.SessionState`."""

    def __init__(
        self,
        player_index: int,
        peer_index: int,
        config: SessionConfig,
        parts: SessionParts,
        state: Callable[[], SessionState],
    ) -> None:
        self._player_index = player_index
        self._peer_index = peer_index
        self._config = config
        self._parts = parts
        self._state = state

    def callback_errors(self) -> int:
        """Every game callback that raised, whichever piece called it."""
        s = self._parts
        return (
            s.counters.callback_errors
            + s.inputs.receiver.counters.callback_errors
            + s.inputs.router.callback_errors
            + s.control.counters.callback_errors
            + s.desync.counters.callback_errors
        )

    def stats(self) -> dict[str, Any]:
        """Every counter and RTT figure as a flat, JSON-serialisable dict."""
        s = self._parts
        inputs = s.inputs
        counters = s.counters
        out: dict[str, Any] = {
            "player_index": self._player_index,
            "peer_index": self._peer_index,
            "state": self._state().value,
            "ping_timer_running": s.timers.ping_running,
            "resend_timer_running": s.timers.resend_running,
            "watchdog_running": s.timers.watchdog_running,
            "peer_silence_ms": s.watchdog.peer_silence_ms,
            "acked_inputs_in_use": inputs.negotiation.use_acked,
            "acked_probes_sent": inputs.negotiation.probes_sent,
            "peer_protocol_version": inputs.negotiation.peer_version,
            "acked_pending": inputs.acked.pending_count,
            "acked_stalled": inputs.acked.stalled,
            "handler_errors": counters.handler_errors,
            "text_messages": counters.text_messages,
            "packets_after_close": counters.packets_after_close,
            "control_undeliverable": counters.control_undeliverable,
        }
        out.update(asdict(inputs.counters))
        out.update(asdict(inputs.upload.counters))
        out["input_upload_backlog"] = inputs.upload.backlog
        out.update(asdict(s.pinger.counters))
        out.update(asdict(s.watchdog.counters))
        for path, stats in s.paths.stats.items():
            for key, value in asdict(stats).items():
                if key == "sent":
                    for sent_key, sent_value in value.items():
                        out[f"{path.value}_{sent_key}"] = sent_value
                else:
                    out[f"{path.value}_{key}"] = value
        out.update({f"ping_channel_{k}": v for k, v in asdict(s.paths.ping_channel_sent).items()})
        out["pings_sent"] = sum(p.pings_sent for p in s.paths.stats.values())
        out["pongs_received"] = sum(p.pongs_received for p in s.paths.stats.values())
        out.update(inputs.receiver.stats())
        out["callback_errors"] = self.callback_errors()
        out["inputs_received"] = inputs.receiver.counters.inputs_delivered
        out.update(s.rtt.snapshot())
        out.update({f"relay_{k}": v for k, v in s.relay_rtt.snapshot().items()})
        out.update({f"naive_{k}": v for k, v in s.pinger.naive_rtt.snapshot().items()})
        out["ping_channel"] = s.pinger.ping_channel_state
        out.update(s.validation.stats())
        out.update(s.health.snapshot())
        # health_status is the health of the path that carries the game (health_path); the
        # DataChannel's own is p2p_health_status.
        out["p2p_health_status"] = out["health_status"]
        carrier, status = carrying_health(
            s.health.status,
            s.paths.is_open(Link.P2P),
            s.watchdog.relay_silence_ms,
            s.relay_rtt.one_way_ms,
            s.health.thresholds,
        )
        out["health_path"] = carrier
        out["health_status"] = status.value
        out.update({f"acked_{k}": v for k, v in inputs.acked.stats().items()})
        out.update(inputs.router.stats())
        out.update({f"control_{k}": v for k, v in s.control.stats().items()})
        out.update({f"desync_{k}": v for k, v in s.desync.stats().items()})
        out.update({f"v1_control_{k}": v for k, v in s.v1_control.stats().items()})
        return out

    def telemetry(self) -> dict[str, Any]:
        """What the experiment keeps: a JSON-serialisable record of this session so far.

        Time series (bounded, oldest rows dropped first and counted, see
        :mod:`~p2p_transport.session.telemetry`): RTT samples per path with their times (an hour
        of pings at the default interval), health status transitions (recorded at each watchdog
        and ping tick, each P2P RTT sample, and when the peer's acknowledgement stall starts or
        ends), route changes with reasons, P2P loss estimates, control-message delivery times.
        Totals: packets and bytes per path and direction, inputs recovered by redundancy,
        duplicates, conflicts, gaps and losses, the control channel's counters. Every ``at_ms``
        is a reading of the session's clock.
        """
        s = self._parts
        now = s.clock()
        paths: dict[str, Any] = {}
        for path, stats in s.paths.stats.items():
            sent = stats.sent
            paths[path.value] = {
                "packets_sent": sent.packets_sent,
                "bytes_sent": sent.bytes_sent,
                "packets_received": stats.packets_received,
                "bytes_received": stats.bytes_received,
                "decode_errors": stats.decode_errors,
                "skipped_closed": sent.skipped_closed,
                "skipped_congested": sent.skipped_congested,
                "send_errors": sent.send_errors,
                "pings_sent": stats.pings_sent,
                "pongs_received": stats.pongs_received,
                "inputs_delivered_first": stats.inputs_delivered,
            }
        record = s.telemetry.to_dict(rtt_interval_ms=self._config.ping_interval_ms)
        for path, tracker in ((Link.P2P, s.rtt), (Link.RELAY, s.relay_rtt)):
            record["rtt"][path.value]["summary"] = tracker.snapshot()
        control = s.control
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "player_index": self._player_index,
            "peer_index": self._peer_index,
            "clock": {
                "unit": "ms",
                "origin": (
                    "the session's clock: performance.now() in the browser (ms since the page "
                    "loaded), not wall-clock time; every at_ms is on it"
                ),
                "session_created_at_ms": round(s.telemetry.started_at_ms, 2),
                "recorded_at_ms": round(now, 2),
            },
            "state": self._state().value,
            "health_status": s.health.status.value,
            "route_mode": s.inputs.router.mode.value,
            "route": s.inputs.router.route.value,
            "route_changes_total": s.inputs.router.change_count,
            "paths": paths,
            "inputs": {
                "sent": s.inputs.counters.inputs_sent,
                "resends": s.inputs.counters.input_resends,
                **s.inputs.receiver.stats(),
            },
            "loss_estimate_p2p": s.health.loss_estimate,
            "control": {
                **asdict(control.counters),
                "delivery_p50_ms": control.delivery_p50_ms,
                "delivery_p99_ms": control.delivery_p99_ms,
            },
            **record,
        }
