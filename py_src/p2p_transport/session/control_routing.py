"""Control messages both ways, and which layouts they take.

To a peer of this package they go reliably and in order on the control channel (0x12 / 0x13,
:mod:`p2p_transport.protocol.control`); once the peer is known to be a version-1 peer (a deployed
JavaScript peer) they go in its own layouts (:mod:`p2p_transport.protocol.v1_control`), which have
no game kinds. State hashes for the desync check (:mod:`p2p_transport.protocol.desync`) travel as
control messages too.
"""

from __future__ import annotations

import logging

from p2p_transport.errors import UsageError
from p2p_transport.protocol.control import ControlCallback, ReliableControlChannel
from p2p_transport.protocol.desync import DesyncCallback, DesyncChecker
from p2p_transport.protocol.negotiation import AckNegotiation
from p2p_transport.protocol.routing import Link
from p2p_transport.protocol.rtt import RTTTracker
from p2p_transport.protocol.v1_control import VersionOneControl, VersionOneError
from p2p_transport.session.config import SessionConfig
from p2p_transport.session.counters import SessionCounters
from p2p_transport.session.paths import Paths
from p2p_transport.session.telemetry import TelemetryRecorder
from p2p_transport.timing import Clock, Scheduler
from p2p_transport.wire.codec import V1_HASH_SIZE
from p2p_transport.wire.control_payloads import (
    encode_episode_end_payload,
    encode_episode_ready_payload,
)
from p2p_transport.wire.messages import (
    GAME_KIND_MAX,
    GAME_KIND_MIN,
    ControlAck,
    ControlKind,
    ControlMessage,
    EpisodeEnd,
    EpisodeReady,
    StateHash,
)

__all__ = ["ControlRouting"]

logger = logging.getLogger(__name__)


class ControlRouting:
    """The control channel, the desync check and the version-1 fallback for one session.

    ``deliver(kind, payload)`` hears the peer's control messages other than state hashes;
    ``on_desync(desync)`` the first mismatch the desync check finds.
    """

    def __init__(
        self,
        clock: Clock,
        scheduler: Scheduler,
        config: SessionConfig,
        paths: Paths,
        rtt: RTTTracker,
        negotiation: AckNegotiation,
        telemetry: TelemetryRecorder,
        counters: SessionCounters,
        deliver: ControlCallback,
        on_desync: DesyncCallback,
    ) -> None:
        self._clock = clock
        self._config = config
        self._paths = paths
        self._rtt = rtt
        self._negotiation = negotiation
        self._telemetry = telemetry
        self._counters = counters
        self._deliver = deliver
        self.control = ReliableControlChannel(
            self._transmit,
            self._on_message,
            clock=clock,
            scheduler=scheduler,
            rtt_hint=self._ping_rtt,
        )
        self.desync = DesyncChecker(
            lambda payload: self.send(ControlKind.STATE_HASH, payload), on_desync
        )
        # The same messages for a version-1 peer, in its own layouts (from when it is known to
        # be one: see check_peer_version).
        self.v1_control = VersionOneControl(
            lambda packet: paths.send_small(Link.P2P, packet),
            self._on_message,
            lambda: self.desync.episode,
        )
        self._peer_is_v1 = False
        self._peer_is_v2 = False

    # --- out ----------------------------------------------------------------------------------

    def send(self, kind: int, payload: bytes) -> int | None:
        """Send a control message of any kind: its sequence number, or ``None`` when it went to
        a version-1 peer in its own layout."""
        if self._peer_is_v1:
            self.v1_control.send(kind, payload)
            return None
        return self.control.send(kind, payload)

    def send_game_control(self, kind: int, payload: bytes) -> int | None:
        """:meth:`send` for the game's own kinds, checked (see ``P2PSession.send_control``)."""
        if isinstance(kind, bool) or not isinstance(kind, int):
            raise UsageError(f"kind must be an int, got {type(kind).__name__}")
        if not GAME_KIND_MIN <= kind <= GAME_KIND_MAX:
            raise UsageError(f"game control kinds are {GAME_KIND_MIN}..{GAME_KIND_MAX}, got {kind}")
        return self.send(kind, payload)

    def send_episode_end(self, frame: int, episode: int) -> int | None:
        return self.send(ControlKind.EPISODE_END, encode_episode_end_payload(frame, episode))

    def send_episode_ready(self, episode: int, state_hash: str | None) -> int | None:
        payload = encode_episode_ready_payload(episode)
        if state_hash is not None:
            self.v1_control.remember_ready_hash(episode, state_hash)
        return self.send(ControlKind.EPISODE_READY, payload)

    def check_peer_version(self) -> None:
        """Move control to the version-1 layouts once the peer is known to be version 1: its
        probes went unanswered, or (with no inputs to probe) its control messages did."""
        if self._peer_is_v1 or self._peer_is_v2:
            return
        negotiation = self._negotiation
        version = negotiation.peer_version
        # Version 2 is final: once the peer spoke it, nothing here can change again.
        self._peer_is_v2 = version == 2
        if version is None:
            negotiation.control_sends(self.control.most_sends)
            version = negotiation.peer_version
        if version == 1:
            self._to_version_one()

    def _to_version_one(self) -> None:
        """The peer is a version-1 peer: stop sending it control messages, which it drops, and
        send what it has not acknowledged in its own layouts where it has them."""
        self._peer_is_v1 = True
        self.desync.compared_bytes = V1_HASH_SIZE
        for kind, payload in self.control.take_unacknowledged():
            try:
                self.v1_control.send(kind, payload)
            except VersionOneError:
                self._counters.control_undeliverable += 1
                logger.warning(
                    "control message of kind %d cannot be sent to a version-1 peer; dropped", kind
                )

    def _transmit(self, packet: bytes) -> bool:
        """Control messages and their acks go out on every open path, DataChannel and relay.

        They are a few small packets per episode, so a second copy costs nothing, while a lost one
        costs a retransmission timeout (50 ms and a few round trips, or more) at an episode
        boundary, where both games wait for it; the copies' losses are independent, so at 30% loss
        on each path 9% of sends are lost instead of 30%. And a DataChannel that is open but dead
        (what the router leaves P2P for) cannot hold them up. The receiver drops whichever copy
        comes second.
        """
        sent = False
        for path in Link:
            if path is Link.RELAY and not self._config.control_on_relay:
                continue
            if self._paths.is_open(path):
                sent = self._paths.send_small(path, packet) or sent
        return sent

    def _ping_rtt(self) -> tuple[float, float] | None:
        """The DataChannel's ping SRTT and RTTVAR: the control channel's RTO until it measures."""
        rtt = self._rtt
        if rtt.srtt_ms is None or rtt.rttvar_ms is None:
            return None
        return rtt.srtt_ms, rtt.rttvar_ms

    # --- in -----------------------------------------------------------------------------------

    def on_control_packet(self, message: ControlMessage, _path: Link) -> None:
        self._negotiation.heard_extension()
        self.control.on_control(message)

    def on_control_ack(self, message: ControlAck, _path: Link) -> None:
        self._negotiation.heard_extension()
        control = self.control
        acked_before = control.counters.acked
        control.on_ack(message)
        newly = control.counters.acked - acked_before
        if newly:
            now = self._clock()
            for delivery_ms in control.delivery_times_ms[-newly:]:
                self._telemetry.record_control_delivery(now, delivery_ms)

    def on_version_one_control(
        self, message: EpisodeEnd | EpisodeReady | StateHash, _path: Link
    ) -> None:
        self.v1_control.on_message(message)

    def _on_message(self, kind: int, payload: bytes) -> None:
        if kind == ControlKind.STATE_HASH:
            self.desync.on_peer_hash(payload)
        else:
            self._deliver(kind, payload)
