"""What the page runs (under Pyodide): a transport, the rollback layer once paired, a bot that
pulls for this player until the page's keyboard does, and a report the page shows."""

from __future__ import annotations

import json
from typing import Any

from p2p_transport.browser.options import TransportOptions
from p2p_transport.browser.transport import BrowserTransport
from p2p_transport.rollback import RollbackSession
from p2p_transport.session import Callbacks
from tug_of_war.game import TugOfWar

#: How often the page's timer wakes: a frame is due every 16.7 ms (or a little more while this
#: side runs ahead), so 4 ms keeps each tick within a quarter of a frame of its time.
WAKE_MS = 4.0


class Match:
    """One player's side: ``start()`` connects; frames run once the players are paired, until
    the episode is over (a side pulled the rope :data:`~tug_of_war.game.WIN_DISTANCE` over)."""

    def __init__(self, room: str) -> None:
        self.game = TugOfWar()
        self.rollback: RollbackSession | None = None
        self.action: int | None = None  # None: the bot plays
        self.next_due = 0.0
        self.events: list[str] = []
        self.transport = BrowserTransport(
            TransportOptions(room=room),
            Callbacks(on_input=lambda frame, action: None, on_event=self.on_event),
        )

    def start(self) -> None:
        self.transport.connect()

    def on_event(self, name: str, detail: dict[str, Any]) -> None:
        self.events.append(name)
        if name == "paired":
            session = self.transport.session
            assert session is not None  # it exists from "paired" on
            self.rollback = RollbackSession(self.game, session, input_delay=2)
            self.next_due = self.transport.clock()
            self.transport.scheduler.set_interval(self.wake, WAKE_MS)

    def set_action(self, action: int) -> None:
        """The keyboard's action (1 pull, 0 rest): the player takes over from the bot."""
        self.action = action

    def wake(self) -> None:
        rollback = self.rollback
        if rollback is None or self.transport.clock() < self.next_due:
            return
        if rollback.episode_over:
            return  # the example plays one episode
        self.next_due += rollback.frame_ms
        rollback.advance_frame(self.bot_action(rollback.current_frame))

    def bot_action(self, frame: int) -> int:
        if self.action is not None:
            return self.action
        # Player 0's bot pulls half the frames, player 1's three in four: player 1 wins.
        player = self.transport.player_index or 0
        return 1 if frame % 4 < 2 + player else 0

    def report_json(self) -> str:
        rollback = self.rollback
        stats = self.transport.stats()
        return json.dumps(
            {
                "player_index": self.transport.player_index,
                "events": self.events,
                "frame": None if rollback is None else rollback.current_frame,
                "rope": self.game.rope,
                "checksum": self.game.checksum().hex(),
                "rollbacks": None if rollback is None else rollback.stats()["rollbacks"],
                "episode_over": rollback is not None and rollback.episode_over,
                # Each finished episode's confirmed final checksum: the same on both sides.
                "final_checksums": []
                if rollback is None
                else [record["final_checksum"] for record in rollback.episodes],
                "rtt_p50_ms": stats.get("rtt_p50_ms"),
            }
        )
