"""The object a game holds: one peer, both paths, and everything measured about them.

:class:`P2PSession` builds the pieces and wires them; each is a module of its own: :mod:`.paths`
(the DataChannel and the relay), :mod:`.inputs` (the game's inputs both ways), :mod:`.pinger`
(pings and RTT), :mod:`.watchdog` (keepalives, silence, local stalls), :mod:`.control_routing`
(control messages, state hashes, the version-1 fallback), :mod:`.intake` (packets in: decoding and
dispatch), :mod:`.timers`, :mod:`.delivery` (the game's callbacks and a layer's handlers),
:mod:`.edge` (what the I/O code calls) and :mod:`.report` (``stats()`` and ``telemetry()``).
"""

from __future__ import annotations

from typing import Any

from p2p_transport.errors import UsageError
from p2p_transport.protocol.faults import LinkEmulator
from p2p_transport.protocol.health import ConnectionHealthMonitor, carrying_health
from p2p_transport.protocol.receiver import InputCallback
from p2p_transport.protocol.relay import SocketIOLike
from p2p_transport.protocol.routing import Link
from p2p_transport.protocol.rtt import RTTTracker
from p2p_transport.protocol.sender import DataChannelLike
from p2p_transport.protocol.validation import Validation
from p2p_transport.session.callbacks import Callbacks
from p2p_transport.session.config import SessionConfig
from p2p_transport.session.control_routing import ControlRouting
from p2p_transport.session.counters import SessionCounters
from p2p_transport.session.delivery import Delivery, LayerHandlers
from p2p_transport.session.edge import SessionEdge, SessionState
from p2p_transport.session.inputs import InputPath
from p2p_transport.session.intake import Intake
from p2p_transport.session.parts import SessionParts
from p2p_transport.session.paths import Paths
from p2p_transport.session.pinger import Pinger
from p2p_transport.session.report import SessionReport
from p2p_transport.session.telemetry import TelemetryRecorder
from p2p_transport.session.timers import SessionTimers
from p2p_transport.session.watchdog import Watchdog
from p2p_transport.timing import Clock, Scheduler
from p2p_transport.wire.codec import encode_focus_state
from p2p_transport.wire.messages import ControlKind

__all__ = ["P2PSession"]


class P2PSession:
    """One peer connection and its relay: the game's inputs both ways, RTT, health, control
    messages and desync checks.

    ``callbacks`` is a :class:`~.callbacks.Callbacks`, or just the ``on_input(frame, action)``
    function. ``channel`` is the DataChannel (or ``edge.attach_channel`` it later), ``relay`` a
    Socket.IO client for the relay path.

    What the game calls is here. The code carrying the I/O calls :attr:`edge` (channel events,
    packets in); a layer built on the session registers with :meth:`attach_layer`; :attr:`parts`
    shows the pieces inside, for layers and tests. Arguments the game passes wrongly (``step``
    with a frame that is not new) raise :class:`~p2p_transport.errors.UsageError` (a
    ``ValueError``) at once; nothing a peer sends raises. Reading :meth:`stats` or
    :meth:`telemetry` changes nothing.
    """

    def __init__(
        self,
        player_index: int,
        peer_index: int,
        callbacks: Callbacks | InputCallback,
        *,
        clock: Clock,
        scheduler: Scheduler,
        channel: DataChannelLike | None = None,
        relay: SocketIOLike | None = None,
        config: SessionConfig | None = None,
    ) -> None:
        if player_index == peer_index:
            raise UsageError(f"player_index and peer_index must differ, both are {player_index}")
        cfg = self.config = config or SessionConfig()
        self.player_index = player_index
        self.peer_index = peer_index

        counters = SessionCounters()
        paths = Paths(relay, cfg.buffer_threshold)
        paths.p2p = channel
        rtt = RTTTracker(clock, cfg.rtt_window)
        relay_rtt = RTTTracker(clock, cfg.rtt_window)
        trackers = {Link.P2P: rtt, Link.RELAY: relay_rtt}
        health = ConnectionHealthMonitor(clock, rtt, cfg.health)
        telemetry = TelemetryRecorder((path.value for path in Link), clock())

        def observe_health() -> None:
            """Let telemetry record the health status if it changed. Called where the status's
            inputs change or time has passed: the watchdog and ping ticks (silence), each P2P RTT
            sample, and the peer's stall starting or ending."""
            now = clock()
            telemetry.observe_health(now, health.status)
            path, status = carrying_health(
                health.status,
                paths.is_open(Link.P2P),
                watchdog.relay_silence_ms,
                relay_rtt.one_way_ms,
                health.thresholds,
            )
            telemetry.observe_game_health(now, path, status)

        delivery = Delivery(Callbacks.of(callbacks), counters, telemetry, observe_health)
        watchdog = Watchdog(clock, paths, health, delivery.on_event)
        pinger = Pinger(
            clock,
            paths,
            trackers,
            # Round trips as a naive pinger would see them on the ping channel (from handling
            # time, with the responder's hold left in), kept beside the corrected ones.
            RTTTracker(clock, cfg.rtt_window),
            telemetry,
            lambda: watchdog.last_stall_end_ms,
            delivery.on_rtt_sample,
        )
        inputs = InputPath(
            player_index,
            peer_index,
            delivery.on_input,
            clock,
            cfg,
            paths,
            health,
            trackers,
            observe_health,
        )
        inputs.router.subscribe(delivery.on_route_change)
        routing = ControlRouting(
            clock,
            scheduler,
            cfg,
            paths,
            rtt,
            inputs.negotiation,
            telemetry,
            counters,
            delivery.on_control,
            delivery.on_desync,
        )
        validation = Validation(clock)
        timers = SessionTimers(
            scheduler,
            clock,
            cfg,
            counters,
            paths,
            health,
            watchdog,
            pinger,
            inputs,
            validation,
            telemetry,
            observe_health,
            routing.check_peer_version,
        )
        intake = Intake(
            peer_index,
            clock,
            counters,
            paths,
            health,
            watchdog,
            pinger,
            inputs,
            validation,
            routing,
            timers.start_resend,
            delivery.on_event,
        )
        self._parts = SessionParts(
            clock=clock,
            paths=paths,
            rtt=rtt,
            relay_rtt=relay_rtt,
            health=health,
            inputs=inputs,
            pinger=pinger,
            watchdog=watchdog,
            control=routing.control,
            desync=routing.desync,
            v1_control=routing.v1_control,
            validation=validation,
            intake=intake,
            timers=timers,
            delivery=delivery,
            telemetry=telemetry,
            counters=counters,
        )
        #: The emulated link every incoming packet goes through, if configured.
        self.link = (
            LinkEmulator(cfg.link, clock, scheduler, seed=player_index)
            if cfg.link is not None
            else None
        )
        self._edge = SessionEdge(
            self.link.intake(intake) if self.link is not None else intake,
            timers,
            counters,
            paths,
            health,
            watchdog,
            pinger,
            validation,
        )
        self._routing = routing
        self._report = SessionReport(
            player_index, peer_index, cfg, self._parts, lambda: self._edge.state
        )
        # Read by step(), once per frame.
        self._note_awake = watchdog.note_awake
        self._send_local_input = inputs.send_local_input
        self._check_peer_version = routing.check_peer_version
        observe_health()

    @property
    def edge(self) -> SessionEdge:
        """What the code carrying the I/O calls: the channels' events and packets, which channels
        to use, starting the watchdog (see :class:`~.edge.SessionEdge`)."""
        return self._edge

    @property
    def parts(self) -> SessionParts:
        """The pieces inside, for a layer built on the session and for tests (see
        :class:`~.parts.SessionParts`)."""
        return self._parts

    @property
    def state(self) -> SessionState:
        """The DataChannel's last event (``NEW``, ``OPEN``, ``CLOSED``, ``FAILED``), or
        ``SHUT_DOWN`` once :meth:`close` was called."""
        return self._edge.state

    # --- what the game calls ------------------------------------------------------------------

    def step(self, frame: int, action: int) -> bool:
        """Send the local input for ``frame`` on the route the router picks (by default over P2P
        and, in parallel, over the relay).

        Every path carries the same packet; the peer delivers whichever copy arrives first.
        Returns whether any path took it.
        """
        self._note_awake()
        sent = self._send_local_input(frame, action)
        self._check_peer_version()
        return sent

    def send_control(self, kind: int, payload: bytes = b"") -> int | None:
        """Send the game's own control message reliably; return its sequence number.

        The peer's ``on_control(kind, payload)`` hears it exactly once, after every earlier control
        message. ``kind`` is in ``GAME_KIND_MIN..GAME_KIND_MAX`` (the kinds below are the
        transport's), ``payload`` at most :data:`~p2p_transport.wire.codec.MAX_CONTROL_PAYLOAD`
        bytes. Raises :class:`~p2p_transport.protocol.control.ControlWindowFull` when too many
        messages are unacknowledged, and
        :class:`~p2p_transport.protocol.v1_control.VersionOneError` once the peer is known to be
        a version-1 peer (a deployed JavaScript peer), which has no such messages.
        """
        return self._routing.send_game_control(kind, payload)

    def send_episode_end(self, frame: int, episode: int) -> int | None:
        """Tell the peer that ``episode`` ended at ``frame`` (``EPISODE_END``): reliably, with a
        sequence number returned, or to a version-1 peer in its own layout (``None``)."""
        return self._routing.send_episode_end(frame, episode)

    def send_episode_ready(self, episode: int, state_hash: str | None = None) -> int | None:
        """Tell the peer that this side is ready for ``episode`` (``EPISODE_READY``), as
        :meth:`send_episode_end` does. ``state_hash``, 8 ASCII characters (the first 8 hex digits
        of the new episode's state hash), goes only to a version-1 peer, which stores it."""
        return self._routing.send_episode_ready(episode, state_hash)

    def send_focus(self, focused: bool, frame: int) -> bool:
        """Tell the peer whether this side's page is in the foreground (``FOCUS_STATE``, 0x14:
        focused, and the frame it changed at), on every open path. Deployed JavaScript peers
        keep track of it; a peer of this package reports it as a ``peer_focus`` event. It goes
        once, like a ping: a lost one is not sent again. Returns whether any path took it."""
        packet = encode_focus_state(focused, frame)  # validates
        paths = self._parts.paths
        sent = False
        for path in Link:
            if paths.is_open(path):
                sent = paths.send_small(path, packet) or sent
        return sent

    def reset_episode(self) -> None:
        """Forget inputs and frame numbers for a new episode; keep the connection and RTT."""
        parts = self._parts
        parts.inputs.reset()
        parts.watchdog.keep_silence_across_reset()
        parts.health.reset()
        # The control channel is left alone: its messages in flight announce the episode change.

    def close(self) -> None:
        """Stop all timers and let go of the channel and relay; the state becomes ``SHUT_DOWN``
        for good. Safe to call more than once."""
        parts = self._parts
        if not parts.timers.closed:
            # What the peer confirmed since the last upload, while the relay is still there.
            parts.inputs.upload_confirmed(final=True)
        parts.timers.close()
        parts.watchdog.stop()
        parts.paths.close()
        parts.pinger.close()
        parts.control.close()
        if self.link is not None:
            self.link.close()

    def stats(self) -> dict[str, Any]:
        """Every counter and RTT figure as a flat, JSON-serialisable dict."""
        return self._report.stats()

    def telemetry(self) -> dict[str, Any]:
        """What the experiment keeps: a JSON-serialisable record of this session so far (see
        :meth:`.report.SessionReport.telemetry`)."""
        return self._report.telemetry()

    def route_changes(self) -> list[dict[str, Any]]:
        """The route changes telemetry kept (``RouteChange.as_dict``), oldest first."""
        return self._parts.telemetry.routes.records()

    # --- for a layer built on the session -----------------------------------------------------

    def attach_layer(self, handlers: LayerHandlers) -> None:
        """Let one layer built on this session (the rollback layer) consume what it takes over:
        every peer input, the control messages of its kinds, a first look at each desync (see
        :class:`~.delivery.LayerHandlers`). The game's callbacks keep hearing everything else.
        A session carries one layer: a second raises
        :class:`~p2p_transport.errors.UsageError`."""
        self._parts.delivery.attach_layer(handlers)

    def send_time_sync(self, payload: bytes) -> int | None:
        """Send a layer's frame-advantage report (``TIME_SYNC``) reliably; it reaches the peer's
        layer (or ``on_control``). Raises as :meth:`send_control` does."""
        return self._routing.send(ControlKind.TIME_SYNC, payload)
