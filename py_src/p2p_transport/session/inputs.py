"""The input path: the local inputs out (version 1 or acked, on the route the router picks) and
the peer's in, exactly once; and the confirmed local inputs to the relay server's record while
the route leaves the relay out (:mod:`~p2p_transport.protocol.input_upload`).

Sans-IO: the session calls :meth:`InputPath.send_local_input` for each local input, hands it
the peer's input packets, runs :meth:`InputPath.resend_if_idle` and
:meth:`InputPath.upload_confirmed` from its resend timer, and :meth:`InputPath.probe_if_idle`
from its ping timer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from p2p_transport.protocol.acked_sender import AckedInputSender
from p2p_transport.protocol.health import ConnectionHealthMonitor
from p2p_transport.protocol.input_upload import InputUpload
from p2p_transport.protocol.negotiation import AckNegotiation
from p2p_transport.protocol.receiver import InputCallback, InputReceiver
from p2p_transport.protocol.routing import Link, LinkSignals, Route, RouteMode, Router
from p2p_transport.protocol.rtt import RTTTracker
from p2p_transport.protocol.sender import RedundantInputs
from p2p_transport.session.config import SessionConfig
from p2p_transport.session.paths import Paths
from p2p_transport.timing import Clock
from p2p_transport.wire.codec import Inputs, encode_input_response
from p2p_transport.wire.messages import InputRequest

__all__ = ["InputCounters", "InputPath"]


@dataclass(slots=True)
class InputCounters:
    inputs_sent: int = 0
    #: Acked packets the resend timer sent while the game produced no input.
    input_resends: int = 0
    #: A deployed peer's input requests (0x12), each answered with an input response (0x13).
    input_requests_answered: int = 0


class InputPath:
    """Both directions of the game's inputs for one session.

    ``observe_health`` is called when the peer's acknowledgement stall starts or ends, so the
    health status (and its telemetry) changes at once.
    """

    def __init__(
        self,
        player_index: int,
        peer_index: int,
        on_input: InputCallback,
        clock: Clock,
        config: SessionConfig,
        paths: Paths,
        health: ConnectionHealthMonitor,
        trackers: dict[Link, RTTTracker],
        observe_health: Callable[[], None],
    ) -> None:
        self.peer_index = peer_index
        self._config = config
        self._paths = paths
        self._health = health
        self._trackers = trackers
        self._observe_health = observe_health
        self.v1 = RedundantInputs(player_index, config.redundancy, config.window)
        self.acked = AckedInputSender(player_index, config.redundancy)
        self.negotiation = AckNegotiation(clock, config.acked_inputs)
        self.upload = InputUpload(player_index)
        self._clock = clock
        self.router = Router(
            config.route_mode if config.relay_inputs else RouteMode.P2P, clock, config.routing
        )
        # The route of every mode but p2p-first, which never changes.
        self._fixed_route = None if self.router.mode is RouteMode.P2P_FIRST else self.router.route
        self.receiver = InputReceiver(peer_index, on_input, config.history_frames)
        self.counters = InputCounters()
        self._stepped_since_resend_check = False
        self._stepped_since_probe_check = False
        # The relay's skipped sends as of the last upload tick.
        self._relay_skips = 0
        # The peer sent inputs that no packet of this side has acknowledged yet.
        self._ack_owed = False

    def send_local_input(self, frame: int, action: int) -> bool:
        """Send the local input for ``frame``; return whether any path took it."""
        negotiation = self.negotiation
        acked = self.acked
        self.counters.inputs_sent += 1
        if negotiation.use_acked:
            acked.add_pending(frame, action)
            sent = self._paths.send_on_route(self.route(), acked.packet(self.receiver.ack_frame))
        else:
            packet = self.v1.add_and_pack(frame, action)
            if negotiation.enabled:
                # Kept from the start, so what version 1 lost goes out again once negotiated.
                acked.add_pending(frame, action)
            route = self.route()
            sent = self._paths.send_on_route(route, packet)
            # Probes go out only until the peer answers one, so only while sending version 1.
            if negotiation.probe_due():
                self._paths.send_on_route(route, acked.packet(self.receiver.ack_frame))
                negotiation.probe_sent()
        self._stepped_since_resend_check = self._stepped_since_probe_check = True
        self._ack_owed = False
        self._set_peer_stalled(acked.stalled)
        return sent

    def resend_if_idle(self) -> None:
        """Resend pending inputs (and an owed ack) when the game sent no input since the last
        check: a paused game's last inputs still reach the peer."""
        if self._stepped_since_resend_check:
            self._stepped_since_resend_check = False
            return
        acked = self.acked
        if not (acked.has_pending or self._ack_owed):
            return
        if self._paths.send_on_route(self.route(), acked.pending_packet(self.receiver.ack_frame)):
            self.counters.input_resends += 1
        self._ack_owed = False

    def probe_if_idle(self) -> None:
        """Probe from a timer while acked inputs are not settled and the game sends nothing: a
        game waiting for an input of the peer's that version 1 lost (its few copies all gone)
        probes no more, and the peer's game may be waiting for one of this side's, so neither
        would ever settle nor resend. The probe carries every pending input. A peer never heard
        at all cannot be probed: it gets the last version-1 inputs again instead."""
        negotiation = self.negotiation
        if self._stepped_since_probe_check:
            self._stepped_since_probe_check = False
            return
        if negotiation.use_acked:
            return
        if self.acked.has_pending and negotiation.probe_due():
            self._paths.send_on_route(self.route(), self.acked.packet(self.receiver.ack_frame))
            negotiation.probe_sent()
        elif negotiation.take_unheard_resend():
            packet = self.v1.pack_recent()
            if packet is not None and self._paths.send_on_route(self.route(), packet):
                self.counters.input_resends += 1

    def upload_confirmed(self, final: bool = False) -> None:
        """Send the server the local inputs the peer confirmed that have not reached it, once a
        second (``final``: now, the session is closing)."""
        paths, router, upload = self._paths, self.router, self.upload
        if paths.relay is None:
            return  # no server to keep them
        acked = self.acked
        # The relay carried every input since the last tick only if the route includes it and
        # it skipped none (closed, congested or failing: those went over P2P alone).
        relay = paths.stats[Link.RELAY].sent
        skips = relay.skipped_closed + relay.skipped_congested + relay.send_errors
        relay_took_all = Link.RELAY in router.route.paths and skips == self._relay_skips
        self._relay_skips = skips
        upload.collect(acked.recorded, acked.acked_through, relay_took_all, router.change_count)
        if not paths.is_open(Link.RELAY):
            return
        now = self._clock()
        packet = upload.packet(now, final)
        if packet is not None and paths.send_small(Link.RELAY, packet):
            upload.sent(now)

    def on_inputs(self, player_index: int, inputs: Inputs, acked: bool, path: Link) -> None:
        """Inputs of the peer, from an input packet (``acked``: a 0x20 one) or an answer to an
        input request."""
        if player_index == self.peer_index:
            self.negotiation.heard_peer_inputs()
        receiver = self.receiver
        gaps_before = receiver.counters.gaps
        self._paths.stats[path].inputs_delivered += receiver.receive_inputs(
            player_index, inputs, acked
        )
        gaps = receiver.counters.gaps - gaps_before
        if gaps:
            self._health.record_gaps(gaps)

    def history(self, start_frame: int, end_frame: int) -> list[tuple[int, int]]:
        """This side's recorded inputs of ``start_frame`` to ``end_frame`` inclusive, as far back
        as kept: the acked sender's 64 (it records every input unless acked inputs are off), or
        the version-1 window."""
        kept = self.acked.recorded if self.negotiation.enabled else self.v1.window
        return [(frame, action) for frame, action in kept if start_frame <= frame <= end_frame]

    def on_input_request(self, request: InputRequest, path: Link) -> None:
        """A deployed peer asks for a range of this side's inputs: answer from the history."""
        inputs = self.history(request.start_frame, request.end_frame)
        self._paths.send_small(path, encode_input_response(self.v1.player_index, inputs))
        self.counters.input_requests_answered += 1

    def on_acked_inputs(
        self, player_index: int, ack_frame: int | None, inputs: Inputs, path: Link
    ) -> bool:
        """Take a 0x20 packet's fields; return whether it settled the negotiation just now (the
        session then starts resending pending inputs on a timer)."""
        settled = False
        if player_index == self.peer_index:
            negotiation = self.negotiation
            settled = negotiation.heard_acked_inputs()
            if settled:
                self.acked.acks_expected = True
            if negotiation.use_acked:
                acked = self.acked
                acked.on_ack(ack_frame)
                self._set_peer_stalled(acked.stalled)
                # Answered by the next packet: the game's next step, or the resend timer's if the
                # game sends nothing. A pure ack (no inputs) is not answered, or two idle peers
                # would echo acks forever.
                if inputs:
                    self._ack_owed = True
        self.on_inputs(player_index, inputs, True, path)
        return settled

    def reset(self) -> None:
        """Forget inputs and frame numbers for a new episode."""
        self.v1.reset()
        self.acked.reset()
        self.receiver.reset()
        self._ack_owed = False

    def route(self) -> Route:
        if self._fixed_route is not None:
            return self._fixed_route  # nothing to measure
        router = self.router
        channel = self._paths.p2p
        if channel is None:
            p2p_open = congested = False
        else:
            p2p_open = channel.readyState == "open"
            congested = p2p_open and channel.bufferedAmount > self._config.buffer_threshold
        return router.update(
            LinkSignals(
                p2p_open=p2p_open,
                p2p_congested=congested,
                p2p_silence_ms=self._health.silence_ms,
                p2p_rtt_ms=self._trackers[Link.P2P].last_sample_ms,
                relay_open=self._paths.is_open(Link.RELAY),
                relay_rtt_ms=self._trackers[Link.RELAY].last_sample_ms,
                unacked_inputs=(self.acked.pending_count if self.negotiation.use_acked else 0),
            )
        )

    def _set_peer_stalled(self, stalled: bool) -> None:
        """Tell the health monitor whether the peer leaves this side's inputs unacknowledged; a
        change moves the status at once, and a stall shorter than a watchdog tick (a route switch
        moving the acks to the relay) is recorded too."""
        if self._health.peer_stalled is not stalled:
            self._health.peer_stalled = stalled
            self._observe_health()
