"""One tab of the demo page: a :class:`~p2p_transport.browser.transport.BrowserTransport`
carrying a match of Pong under the rollback layer (:class:`~p2p_demo.match.PongMatch`), or, for
the transport's own tests, driving a :class:`~p2p_demo.scripted_game.ScriptedGame`; in a room of
more than two players a :class:`~p2p_transport.browser.mesh.MeshTransport` carrying team Pong;
with reports for the page and tests."""

from __future__ import annotations

import json
from typing import Any

import js

from p2p_demo.match import PongMatch, SpectatorMatch
from p2p_demo.scripted_game import ScriptedGame
from p2p_transport.browser.mesh import MeshTransport
from p2p_transport.browser.mesh_pairing import MeshCallbacks
from p2p_transport.browser.options import TransportOptions
from p2p_transport.browser.spectator import SpectatorTransport
from p2p_transport.browser.transport import BrowserTransport
from p2p_transport.browser.visibility import PageVisibility
from p2p_transport.protocol.faults import FaultConfig, LinkConfig
from p2p_transport.protocol.lifecycle import DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_ICE_TIMEOUT_MS
from p2p_transport.protocol.reconnect import ReconnectConfig
from p2p_transport.protocol.routing import RouteMode, RoutingThresholds
from p2p_transport.protocol.sender import DEFAULT_REDUNDANCY
from p2p_transport.session import Callbacks, SessionConfig
from p2p_transport.session.pinger import DEFAULT_PING_INTERVAL_MS
from p2p_transport.wire.dialects import DeployedDialect
from p2p_transport.wire.signaling import DEFAULT_ROOM, PLAYERS_PER_ROOM

__all__ = ["DemoTab", "dialect", "fault_config"]


class DemoTab:
    """One tab of the demo: a :class:`BrowserTransport` carrying a game.

    Created by the page with its options as JSON (the URL fragment); the page and the tests read
    :meth:`report_json`. ``game`` is ``pong`` (the default: :class:`PongMatch`, with
    ``episodes``, ``seed``, ``input_delay``, ``max_prediction``; ``late_player`` and
    ``late_ms`` start that player's loop late; ``perturb_player`` and ``perturb_at`` make that
    player's game diverge at a frame; ``resume``, which the page sets when it played in this
    room before a reload, takes the game under way back from the other player) or
    ``scripted`` (:class:`ScriptedGame`: the transport alone, each input checked on arrival).
    Options of both: ``frames`` (per episode), ``autostart``, ``room``, ``server_url``,
    ``ice_servers``, ``relay_only``,
    ``ice_timeout_ms``, ``connect_timeout_ms`` (``null``: none), ``token``, ``relay_inputs``,
    ``ping_interval_ms``, ``rtt_window``;
    ``route`` (``parallel``, ``p2p-first``, ``p2p``, ``relay``) and ``routing`` (a dict of
    :class:`~.routing.RoutingThresholds` fields); fault injection on what this tab sends over the
    DataChannel: ``loss``, ``burst``, ``delay_ms``, ``duplicate``, ``reorder``, ``fault_seed``;
    ``link``: whole-link emulation of what this tab receives on every path, in netem's words;
    ``reconnect_attempts`` (0: no reconnection) and ``reconnect`` (a dict of
    :class:`~.reconnect.ReconnectConfig` fields); ``deployed`` (``{game_id, player_id, join}``)
    to pair through a server of the deployed interactive_gym / mug shapes at ``server_url``;
    ``spectator`` (Pong only) watches the room instead: no slot, no input, the game run behind the
    players from the server's feed (:class:`~p2p_demo.match.SpectatorMatch`);
    ``players`` (3 to 8, Pong only) for a room of that many, each tab linked to every other; its
    game starts once every link's DataChannel opened (or was found unavailable); there,
    ``fault_link`` (``[a, b]``) confines the fault injection to the link between players ``a``
    and ``b`` (both directions).
    """

    def __init__(self, options_json: str) -> None:
        options = self.options = json.loads(options_json)
        self.game_kind = str(options.get("game", "pong"))
        if self.game_kind not in ("pong", "scripted"):
            raise ValueError(f"game must be 'pong' or 'scripted', got {self.game_kind!r}")
        self.frames = int(options.get("frames", 600))
        self.autostart = bool(options.get("autostart", True))
        session_config = SessionConfig(
            relay_inputs=bool(options.get("relay_inputs", True)),
            redundancy=int(options.get("redundancy", DEFAULT_REDUNDANCY)),
            acked_inputs=bool(options.get("acked_inputs", True)),
            control_on_relay=bool(options.get("control_on_relay", True)),
            # Whole-link emulation in netem's words ("delay 40ms 5ms loss 5%"), every path.
            link=LinkConfig.parse(options["link"]) if options.get("link") else None,
            relay_pings=bool(options.get("relay_pings", True)),
            ping_interval_ms=float(options.get("ping_interval_ms", DEFAULT_PING_INTERVAL_MS)),
            # The report's percentiles cover the whole run, not only the last 10 pings.
            rtt_window=int(options.get("rtt_window", 1000)),
            route_mode=RouteMode(options.get("route", RouteMode.PARALLEL.value)),
            routing=RoutingThresholds(**options.get("routing", {})),
        )
        reconnect = dict(options.get("reconnect", {}))
        if "reconnect_attempts" in options:
            reconnect["max_attempts"] = int(options["reconnect_attempts"])
        self.players = int(options.get("players", PLAYERS_PER_ROOM))
        if self.players != PLAYERS_PER_ROOM and self.game_kind != "pong":
            raise ValueError(f"a room of {self.players} players plays pong, not {self.game_kind}")
        transport_options = TransportOptions(
            server_url=str(options.get("server_url", "")),
            room=str(options.get("room", DEFAULT_ROOM)),
            ice_servers=tuple(options.get("ice_servers", ())),
            relay_only=bool(options.get("relay_only", False)),
            ice_timeout_ms=float(options.get("ice_timeout_ms", DEFAULT_ICE_TIMEOUT_MS)),
            connect_timeout_ms=options.get("connect_timeout_ms", DEFAULT_CONNECT_TIMEOUT_MS),
            token=options.get("token"),
            session=session_config,
            reconnect=ReconnectConfig(**reconnect),
            faults=None if "fault_link" in options else fault_config(options),
            fault_seed=int(options.get("fault_seed", 0)),
            dialect=dialect(options),
            players=self.players,
            spectator=bool(options.get("spectator", False)),
        )
        self.transport: BrowserTransport | MeshTransport | SpectatorTransport
        if transport_options.spectator:
            self.transport = SpectatorTransport(
                transport_options, self._on_feed_packet, self._on_event
            )
        elif self.players == PLAYERS_PER_ROOM:
            self.transport = BrowserTransport(
                transport_options,
                Callbacks(
                    on_input=self._on_input,
                    on_event=self._on_event,
                    on_control=self._on_control,
                ),
            )
        else:
            self.transport = MeshTransport(
                transport_options,
                MeshCallbacks(on_input=lambda frame, action, player: None, on_event=self._on_event),
            )
        self.game: ScriptedGame | None = None
        self.match: PongMatch | SpectatorMatch | None = None
        #: A spectator's feed packets that came before its match existed.
        self.feed_dropped = 0
        #: The peer's control messages as they arrived, (kind, payload), for the tests.
        self.controls_received: list[tuple[int, bytes]] = []
        self.channel_open_ms: float | None = None
        self.paired_ms: float | None = None
        #: In a room of more than two: when each peer's DataChannel first opened (or was found
        #: unavailable: ``None``), by the peer's index.
        self.link_open_ms: dict[int, float | None] = {}
        self._visibility = PageVisibility(self._on_visibility)
        #: The game's own events (the other player's page away and back), for the event log.
        self.game_events: list[dict[str, Any]] = []

    def start(self) -> None:
        self.transport.connect()

    def _on_event(self, name: str, detail: dict[str, Any]) -> None:
        transport = self.transport
        if isinstance(transport, SpectatorTransport):
            if name == "room_ready" and self.match is None:
                self.paired_ms = transport.clock()
                self.match = SpectatorMatch(
                    int(detail["players"]),
                    transport.scheduler,
                    transport.clock,
                    episodes=int(self.options.get("episodes", 1)),
                    episode_frames=self.frames,
                    seed=int(self.options.get("seed", 0)),
                )
                if self.autostart:
                    self.start_game()
        elif isinstance(transport, MeshTransport):
            self._on_mesh_event(transport, name, detail)
        elif name == "paired":
            player = int(detail["player_index"])
            peer = int(detail["peer_index"])
            match = self.match
            if isinstance(match, PongMatch) and match.rollback.awaits(peer):
                # The other player's page came back (a reload): it takes the game under way.
                assert transport.session is not None
                match.rollback.replace_session(peer, transport.session)
                return
            self.paired_ms = transport.clock()
            if self.game_kind == "pong":
                self.match = self._pong_match(player)
            else:
                self.game = ScriptedGame(
                    player,
                    int(detail["peer_index"]),
                    self.frames,
                    transport.step,
                    transport.scheduler,
                    transport.clock,
                )
        elif name == "open":
            if self.channel_open_ms is None:
                self.channel_open_ms = transport.clock()
            if self.autostart:
                self.start_game(only_if_new=True)
        elif name == "p2p_unavailable" and self.autostart:
            # No DataChannel: the relay alone carries the game, which starts all the same.
            self.start_game(only_if_new=True)

    def _on_mesh_event(self, transport: MeshTransport, name: str, detail: dict[str, Any]) -> None:
        if name == "room_ready":
            self.paired_ms = transport.clock()
            me = int(detail["player_index"])
            link = self.options.get("fault_link")
            if link is not None and me in link:
                (peer,) = [index for index in link if index != me]
                transport.set_faults(fault_config(self.options), int(peer))
            self.match = self._pong_match(me)
            return
        peer = detail.get("peer")
        if peer is None or peer in self.link_open_ms:
            return
        if name == "open":
            self.link_open_ms[peer] = transport.clock()
        elif name == "p2p_unavailable":
            self.link_open_ms[peer] = None
        else:
            return
        if len(self.link_open_ms) == self.players - 1:
            opened = [ms for ms in self.link_open_ms.values() if ms is not None]
            self.channel_open_ms = max(opened, default=None)
            if self.autostart:
                self.start_game(only_if_new=True)

    def _pong_match(self, player: int) -> PongMatch:
        options = self.options
        transport = self.transport
        assert not isinstance(transport, SpectatorTransport)  # a player's tab
        session = transport.sessions if isinstance(transport, MeshTransport) else transport.session
        assert session  # paired, or the room is ready
        perturb = options.get("perturb_at") if options.get("perturb_player") == player else None
        match = PongMatch(
            session,
            self.transport.scheduler,
            self.transport.clock,
            episodes=int(options.get("episodes", 1)),
            episode_frames=self.frames,
            seed=int(options.get("seed", 0)),
            input_delay=int(options.get("input_delay", 2)),
            max_prediction=int(options.get("max_prediction", 8)),
            perturb_at=None if perturb is None else int(perturb),
            resume=bool(options.get("resume", False)) and self.players == PLAYERS_PER_ROOM,
            on_peer_absent=self._on_peer_absent,
        )
        # No visibilitychange comes for a page that is hidden already.
        if self._visibility.hidden:
            match.rollback.set_hidden(True)
        return match

    def _on_peer_absent(self, player: int, event: str) -> None:
        """The other player's page went away, came back, or did not in time: in the page's
        event log as ``peer_absent``, ``peer_resumed``, ``peer_gone``."""
        self.game_events.append(
            {"at_ms": self.transport.clock(), "event": f"peer_{event}", "player_index": player}
        )

    def _on_visibility(self, hidden: bool) -> None:
        """The page went to the background or came back: the rollback layer idles this seat
        (its hidden_policy) while its timers are throttled."""
        if isinstance(self.match, PongMatch):
            self.match.rollback.set_hidden(hidden)

    def _on_feed_packet(self, data: bytes) -> None:
        if isinstance(self.match, SpectatorMatch):
            self.match.on_packet(data)
        else:
            self.feed_dropped += 1

    def _on_input(self, frame: int, action: int) -> None:
        if self.game is not None:
            self.game.on_input(frame, action)

    def start_game(self, only_if_new: bool = False) -> None:
        """Start the game loop (a late player's after its ``late_ms``)."""
        if self.match is not None:
            if not (only_if_new and self.match.started):
                late = (
                    isinstance(self.match, PongMatch)
                    and self.options.get("late_player") == self.match.rollback.player_index
                )
                self.match.start(float(self.options.get("late_ms", 0)) if late else 0.0)
            return
        if self.game is None:
            raise RuntimeError("not paired yet")
        if not (only_if_new and self.game.next_frame > 0):
            self.game.start()

    def set_keys(self, bits: int) -> None:
        """The keyboard's action bits (1 up, 2 down): the player takes over from the bot."""
        if isinstance(self.match, PongMatch):
            self.match.set_keys(int(bits))

    def view_json(self) -> str:
        """What the page draws of the game now (``null`` before pairing)."""
        if self.match is None:
            return "null"
        episode, state = self.match.progress()
        return json.dumps({**self.match.game.view(), "episode": episode, "state": state})

    def records_json(self) -> str:
        """Each finished episode's record (both players' inputs, final checksum) as JSON."""
        return json.dumps(self.match.records() if self.match is not None else [])

    def rollback_telemetry_json(self) -> str:
        """The rollback layer's telemetry (a spectator's: its figures; ``null`` without a
        match)."""
        if self.match is None:
            return "null"
        if isinstance(self.match, SpectatorMatch):
            return json.dumps(self.match.spectator.stats())
        return json.dumps(self.match.rollback.telemetry())

    def reset_episode(self) -> None:
        """A new episode on the same connection: transport state and the game start over."""
        if self.game is None:
            raise RuntimeError("not paired yet")
        assert isinstance(self.transport, BrowserTransport)  # a scripted game is two players'
        self.transport.reset_episode()
        self.game.reset()

    def report(self) -> dict[str, Any]:
        return {
            "player_index": None
            if isinstance(self.transport, SpectatorTransport)
            else self.transport.player_index,
            "spectator": isinstance(self.transport, SpectatorTransport),
            "paired_ms": self.paired_ms,
            "channel_open_ms": self.channel_open_ms,
            "link_open_ms": {str(peer): ms for peer, ms in self.link_open_ms.items()},
            "game_kind": self.game_kind,
            "game": (
                self.match.report()
                if self.match is not None
                else self.game.report()
                if self.game is not None
                else None
            ),
            "stats": self.transport.stats(),
            "event_log": sorted(
                [*self.transport.event_log(), *self.game_events], key=lambda e: e["at_ms"]
            ),
            "route_changes": []
            if isinstance(self.transport, SpectatorTransport)
            else self.transport.route_changes(),
        }

    def _on_control(self, kind: int, payload: bytes) -> None:
        self.controls_received.append((kind, payload))

    def controls_json(self) -> str:
        """The control messages received so far: ``[[kind, payload hex], ...]`` in order."""
        return json.dumps([[kind, payload.hex()] for kind, payload in self.controls_received])

    def timing_json(self) -> str:
        """When each local frame was sent and each peer frame arrived, on the page's clock, with
        the page's ``performance.timeOrigin`` so that two tabs' times can be compared."""
        game = self.game
        return json.dumps(
            {
                "time_origin_ms": float(js.performance.timeOrigin),
                "sent_at_ms": game.sent_at_ms if game is not None else [],
                "received_at_ms": game.received_at_ms if game is not None else {},
            }
        )

    def report_json(self) -> str:
        return json.dumps(self.report())

    def telemetry_json(self) -> str:
        """The session's telemetry record as JSON (``null`` before pairing; a spectator, which
        has no session, ``null`` too)."""
        transport = self.transport
        if isinstance(transport, SpectatorTransport):
            return "null"
        return json.dumps(transport.telemetry())

    def set_faults(self, options_json: str) -> None:
        """Change this tab's fault injection mid-game: the same keys as the page options
        (``loss``, ``burst``, ``delay_ms``, ``duplicate``, ``reorder``); ``{}`` for none."""
        if isinstance(self.transport, SpectatorTransport):
            raise ValueError("a spectator sends nothing to impair")
        self.transport.set_faults(fault_config(json.loads(options_json)))

    def set_link(self, netem: str) -> None:
        """Change the whole-link emulation of what this tab (of two) receives, mid-game, in
        netem's words (``"loss 100%"`` cuts every path; the tab must have started with a
        ``link``)."""
        transport = self.transport
        session = transport.session if isinstance(transport, BrowserTransport) else None
        link = None if session is None else session.link
        if link is None:
            raise ValueError("no emulated link: start the tab with a 'link' option")
        link.config = LinkConfig.parse(netem)

    def close(self) -> None:
        self._visibility.close()
        if self.match is not None:
            self.match.stop()
        if self.game is not None:
            self.game.stop()
        self.transport.close()


def dialect(options: dict[str, Any]) -> DeployedDialect | None:
    """The deployed server's dialect if the options ask for it (``deployed``: ``{game_id,
    player_id, join: [event, payload]}``), else ``None`` (the reference server's)."""
    deployed = options.get("deployed")
    if deployed is None:
        return None
    join = deployed.get("join")
    return DeployedDialect(
        str(deployed["game_id"]),
        str(deployed["player_id"]),
        (str(join[0]), dict(join[1])) if join else None,
    )


def fault_config(options: dict[str, Any]) -> FaultConfig | None:
    """The fault injection a tab's options ask for, or ``None`` if they ask for none."""
    config = FaultConfig(
        loss=float(options.get("loss", 0.0)),
        burst=int(options.get("burst", 1)),
        delay_ms=float(options.get("delay_ms", 0.0)),
        duplicate=float(options.get("duplicate", 0.0)),
        reorder=float(options.get("reorder", 0.0)),
    )
    return None if config == FaultConfig(burst=config.burst) else config
