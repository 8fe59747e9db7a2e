"""A signaling and relay server with the deployed interactive_gym / mug server's event shapes,
written from the platform notes, for the browser test of ``DeployedDialect``.

What the notes describe, it does: ``webrtc_signal {game_id, target_player_id, type, payload}``
forwarded to the target as ``{type, from_player_id, game_id, payload}`` (signals of unknown games
or players dropped), game start as ``pyodide_game_ready {players, game_id}``, and the JSON relay,
``pyodide_player_action`` forwarded to the other players as ``pyodide_other_player_action
{player_id, action, frame_number, timestamp}``. A client enters a game by saying ``join_game
{game_id, player_id}``: ids it knew before any server said them, which the real server (its lobby
assigns them; see ``tests/mug_experiment``) has no way to take. That is the one case this
stand-in is kept for (``DeployedDialect`` with a ``join``); the deployed server's own flow is
tested against the real one (``test_mug_server.py``).
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from typing import Any, Final

import socketio
import uvicorn

JOIN_EVENT: Final = "join_game"
PLAYERS_PER_GAME: Final = 2
STARTUP_TIMEOUT_S: Final = 15.0


class DeployedShapesServer:
    """The server in a thread on 127.0.0.1: ``with DeployedShapesServer() as s: s.url``."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._games: dict[str, dict[str, str]] = {}
        self._players: dict[str, tuple[str, str]] = {}
        self.sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*")
        self.sio.on(JOIN_EVENT, self._join)
        self.sio.on("webrtc_signal", self._signal)
        self.sio.on("pyodide_player_action", self._action)
        self.sio.on("disconnect", self._disconnect)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(socketio.ASGIApp(self.sio), log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> DeployedShapesServer:
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the deployed-shapes server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    async def _join(self, sid: str, data: dict[str, Any]) -> None:
        game_id, player_id = str(data["game_id"]), str(data["player_id"])
        players = self._games.setdefault(game_id, {})
        players[player_id] = sid
        self._players[sid] = (game_id, player_id)
        if len(players) == PLAYERS_PER_GAME:
            ready = {"game_id": game_id, "players": list(players)}
            for member in players.values():
                await self.sio.emit("pyodide_game_ready", ready, to=member)

    async def _signal(self, sid: str, data: dict[str, Any]) -> None:
        sender = self._players.get(sid)
        target = self._games.get(str(data.get("game_id")), {}).get(
            str(data.get("target_player_id"))
        )
        if sender is None or target is None:
            self.counts["signals_dropped"] += 1
            return
        self.counts["signals"] += 1
        forwarded = {
            "type": data.get("type"),
            "from_player_id": sender[1],
            "game_id": sender[0],
            "payload": data.get("payload"),
        }
        await self.sio.emit("webrtc_signal", forwarded, to=target)

    async def _action(self, sid: str, data: dict[str, Any]) -> None:
        sender = self._players.get(sid)
        if sender is None:
            return
        self.counts["actions"] += 1
        forwarded = {
            "player_id": sender[1],
            "action": data.get("action"),
            "frame_number": data.get("frame_number"),
            "timestamp": data.get("timestamp"),
        }
        for player_id, member in self._games[sender[0]].items():
            if player_id != sender[1]:
                await self.sio.emit("pyodide_other_player_action", forwarded, to=member)

    async def _disconnect(self, sid: str, *_: Any) -> None:
        sender = self._players.pop(sid, None)
        if sender is not None:
            self._games.get(sender[0], {}).pop(sender[1], None)
