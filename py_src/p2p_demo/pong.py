"""Pong for two to eight players, deterministic to the bit: the demo's real game.

Integer state only (positions in sixteenths of a pixel), no floats, and the one random choice
(the serve's angle) comes from a seeded generator kept in the state. The same inputs from the
same state therefore give the same game on every machine, which is what rollback needs.

With more than two players it is team Pong: even seats defend the left goal, odd seats the
right one, and a team's paddles stand in rows, seats 0 and 1 nearest their goal, each next pair
a row further in. The score is per side. Two players play the two-player game exactly as it
was before teams, down to the checksum's bytes.

Actions are bit sets: :data:`UP` and :data:`DOWN` (both or neither: stand still).
"""

from __future__ import annotations

import hashlib
import random
import struct
from dataclasses import astuple, dataclass
from typing import Any, Final

from p2p_transport.errors import UsageError
from p2p_transport.wire.signaling import MAX_PLAYERS, MIN_PLAYERS

__all__ = ["DOWN", "UP", "PongBot", "PongGame", "PongState", "paddle_x"]

UP: Final = 1
DOWN: Final = 2
#: Sub-pixel units per pixel: slow speeds and angles without floats.
SUB: Final = 16
WIDTH: Final = 320 * SUB
HEIGHT: Final = 200 * SUB
PADDLE_H: Final = 40 * SUB
PADDLE_W: Final = 6 * SUB
#: Seats 0 and 1 sit this far in from each side.
PADDLE_INSET: Final = 10 * SUB
#: Each further row of a team (seats 2 and 3, then 4 and 5...) stands this much further in. With
#: eight players the front rows still leave the serve 33 px to travel (11 frames at SERVE_SPEED,
#: time for a paddle to cover 44 px), and rows stay further apart than MAX_SPEED, so the ball
#: crosses at most one paddle face per frame.
ROW_GAP: Final = 36 * SUB
PADDLE_SPEED: Final = 4 * SUB
BALL_SIZE: Final = 6 * SUB
#: The serve's horizontal speed (px per frame in SUB units): 3 px, crossing the field in ~1.7 s.
SERVE_SPEED: Final = 3 * SUB
#: Each return speeds the ball up by this much, to at most MAX_SPEED.
SPEEDUP: Final = SUB // 4
MAX_SPEED: Final = 7 * SUB
#: A pause before each serve (1 s at 60 Hz) so players see the point.
SERVE_FRAMES: Final = 60
#: The first side to this many points wins the episode.
WIN_SCORE: Final = 5
_LCG_MULTIPLIER: Final = 1103515245
_LCG_INCREMENT: Final = 12345
_CENTRED: Final = (HEIGHT - PADDLE_H) // 2


@dataclass(slots=True)
class PongState:
    """One frame of the game. ``score0`` and ``serve_to == 0`` are the left side's (even seats),
    ``score1`` and ``serve_to == 1`` the right side's (odd seats)."""

    frame: int = 0
    paddle0: int = _CENTRED
    paddle1: int = _CENTRED
    ball_x: int = (WIDTH - BALL_SIZE) // 2
    ball_y: int = (HEIGHT - BALL_SIZE) // 2
    vel_x: int = 0
    vel_y: int = 0
    score0: int = 0
    score1: int = 0
    serve_in: int = SERVE_FRAMES
    #: Who serves next: the ball goes towards this side.
    serve_to: int = 0
    rng: int = 1
    #: The paddles of seats 2 and up, in seat order: empty with two players, whose state (and
    #: checksum) is therefore what it was before teams.
    more_paddles: tuple[int, ...] = ()

    @property
    def players(self) -> int:
        return 2 + len(self.more_paddles)

    @property
    def paddles(self) -> tuple[int, ...]:
        """Every seat's paddle (its top edge), in seat order."""
        return (self.paddle0, self.paddle1, *self.more_paddles)


#: The fields every state has, packed for the checksum; ``more_paddles`` follows when not empty.
_PACK = struct.Struct(">" + "q" * (len(astuple(PongState())) - 1))


def paddle_x(seat: int) -> int:
    """The left edge of ``seat``'s paddle: its side from the seat's parity, its row from the
    seat's pair."""
    x = PADDLE_INSET + seat // 2 * ROW_GAP
    return x if seat % 2 == 0 else WIDTH - PADDLE_W - x


class PongGame:
    """The game the rollback layer drives (:class:`p2p_transport.rollback.Game`).

    ``seed`` picks the serves' angles; every player must use the same, and the same
    ``players`` (:data:`MIN_PLAYERS` to :data:`MAX_PLAYERS`). ``perturb_at`` makes this copy
    differ from its peers from that frame on (the ball shifts by a sixteenth of a pixel), the
    deliberately non-deterministic variant the desync tests use.
    """

    def __init__(self, seed: int = 0, perturb_at: int | None = None, *, players: int = 2) -> None:
        if isinstance(players, bool) or not isinstance(players, int):
            raise UsageError(f"players must be an int, got {type(players).__name__}")
        if not MIN_PLAYERS <= players <= MAX_PLAYERS:
            raise UsageError(
                f"players must be in {MIN_PLAYERS}..{MAX_PLAYERS} (a room's sizes), got {players}"
            )
        self.players = players
        self.perturb_at = perturb_at
        self.reset(seed)

    def reset(self, seed: int) -> None:
        """A new episode: the paddles centred, the score 0:0, serves drawn from ``seed``."""
        self.state = PongState(
            rng=seed & 0x7FFFFFFF or 1, more_paddles=(_CENTRED,) * (self.players - 2)
        )

    # --- Game ---------------------------------------------------------------------------------

    def save_state(self) -> tuple[Any, ...]:
        return astuple(self.state)

    def load_state(self, state: object) -> None:
        assert isinstance(state, tuple)
        self.state = PongState(*state)

    def checksum(self) -> bytes:
        return hashlib.blake2b(self.encode_state(self.save_state()), digest_size=16).digest()

    def encode_state(self, state: tuple[Any, ...]) -> bytes:
        """A saved state as bytes (for a page that comes back, or a desync's repair): the
        fields packed, then the paddles of seats 2 and up."""
        *fields, more = state
        return _PACK.pack(*fields) + struct.pack(f">{len(more)}q", *more)

    def decode_state(self, data: bytes) -> tuple[Any, ...]:
        """The state :meth:`encode_state` made; ``ValueError`` for bytes of another game's size
        (another number of players)."""
        size = _PACK.size + 8 * (self.players - 2)
        if len(data) != size:
            raise ValueError(f"a {self.players}-player state is {size} bytes, got {len(data)}")
        more = struct.unpack_from(f">{self.players - 2}q", data, _PACK.size)
        return (*_PACK.unpack_from(data), more)

    def done(self) -> bool:
        return max(self.state.score0, self.state.score1) >= WIN_SCORE

    def advance(self, inputs: tuple[int, ...]) -> None:
        if len(inputs) != self.players:
            raise UsageError(
                f"inputs must have one action per player ({self.players}), got {inputs}"
            )
        s = self.state
        s.paddle0 = _move_paddle(s.paddle0, inputs[0])
        s.paddle1 = _move_paddle(s.paddle1, inputs[1])
        if s.more_paddles:
            s.more_paddles = tuple(map(_move_paddle, s.more_paddles, inputs[2:]))
        if s.serve_in > 0:
            s.serve_in -= 1
            if s.serve_in == 0:
                self._serve()
        else:
            self._move_ball()
        if self.perturb_at is not None and s.frame == self.perturb_at:
            s.ball_y += 1
        s.frame += 1

    # --- the rules ----------------------------------------------------------------------------

    def _serve(self) -> None:
        s = self.state
        s.rng = (s.rng * _LCG_MULTIPLIER + _LCG_INCREMENT) & 0x7FFFFFFF
        # Seven angles, from steeply up to steeply down, never flat.
        s.vel_y = ((s.rng >> 16) % 7 - 3) * (SUB // 2) or SUB // 4
        s.vel_x = -SERVE_SPEED if s.serve_to == 0 else SERVE_SPEED

    def _move_ball(self) -> None:
        s = self.state
        s.ball_x += s.vel_x
        s.ball_y += s.vel_y
        if s.ball_y < 0:
            s.ball_y, s.vel_y = -s.ball_y, -s.vel_y
        elif s.ball_y > HEIGHT - BALL_SIZE:
            s.ball_y, s.vel_y = 2 * (HEIGHT - BALL_SIZE) - s.ball_y, -s.vel_y
        # A paddle returns the ball in the frame it crosses the paddle's face (at most one
        # step past it), reflected back to the face's side. Only the side the ball flies
        # towards can return it: it passes through the backs of its own side's paddles, so a
        # front row never blocks its team's returns.
        if s.vel_x:
            direction = 1 if s.vel_x > 0 else -1
            leading_edge = s.ball_x + (BALL_SIZE if direction > 0 else 0)
            paddles = s.paddles
            for seat in range(0 if direction < 0 else 1, len(paddles), 2):
                face = paddle_x(seat) + (0 if direction > 0 else PADDLE_W)
                past = (leading_edge - face) * direction
                if 0 <= past < MAX_SPEED and _hits(paddles[seat], s.ball_y):
                    s.ball_x -= 2 * past * direction
                    s.vel_x, s.vel_y = _return(s.vel_x, s.vel_y, paddles[seat], s.ball_y)
                    break
        if s.ball_x + BALL_SIZE < 0:
            self._point(scorer=1)
        elif s.ball_x > WIDTH:
            self._point(scorer=0)

    def _point(self, scorer: int) -> None:
        s = self.state
        if scorer == 0:
            s.score0 += 1
        else:
            s.score1 += 1
        s.serve_to = 1 - scorer  # the next serve goes to the side that conceded
        s.ball_x, s.ball_y = (WIDTH - BALL_SIZE) // 2, (HEIGHT - BALL_SIZE) // 2
        s.vel_x = s.vel_y = 0
        s.serve_in = SERVE_FRAMES

    def view(self) -> dict[str, Any]:
        """What the page draws, in pixels. ``paddles`` holds every seat's top edge and
        ``paddle_x`` its left edge, in seat order (seats 0 and 1 first, at ``inset`` from
        their sides, as with two players)."""
        s = self.state
        return {
            "frame": s.frame,
            "width": WIDTH // SUB,
            "height": HEIGHT // SUB,
            "players": s.players,
            "paddles": [y // SUB for y in s.paddles],
            "paddle_x": [paddle_x(seat) // SUB for seat in range(s.players)],
            "paddle_h": PADDLE_H // SUB,
            "paddle_w": PADDLE_W // SUB,
            "inset": PADDLE_INSET // SUB,
            "ball": [s.ball_x // SUB, s.ball_y // SUB],
            "ball_size": BALL_SIZE // SUB,
            "score": [s.score0, s.score1],
        }


def _move_paddle(y: int, action: int) -> int:
    step = (PADDLE_SPEED if action & DOWN else 0) - (PADDLE_SPEED if action & UP else 0)
    return max(0, min(HEIGHT - PADDLE_H, y + step))


def _hits(paddle_y: int, ball_y: int) -> bool:
    return ball_y + BALL_SIZE >= paddle_y and ball_y <= paddle_y + PADDLE_H


def _return(vel_x: int, vel_y: int, paddle_y: int, ball_y: int) -> tuple[int, int]:
    """The ball's velocity off a paddle: faster, and steeper the further from the centre."""
    speed = min(MAX_SPEED, abs(vel_x) + SPEEDUP)
    offset = (ball_y + BALL_SIZE // 2) - (paddle_y + PADDLE_H // 2)
    new_y = max(-MAX_SPEED, min(MAX_SPEED, vel_y + offset // 8))
    return (speed if vel_x < 0 else -speed), new_y


class PongBot:
    """A scripted player for headless runs, for any seat: follows the ball, and now and then
    hesitates (from its own seeded generator), so its inputs change often and the peers'
    predictions miss. Every seat of a team follows the ball, so a row nearer the goal catches
    what the rows in front of it miss."""

    #: Chance per frame of doing nothing: a bot that never hesitates is too regular to test
    #: prediction.
    HESITATE: Final = 0.15

    def __init__(self, player: int, seed: int = 0) -> None:
        if isinstance(player, bool) or not isinstance(player, int):
            raise UsageError(f"player must be an int, got {type(player).__name__}")
        if not 0 <= player < MAX_PLAYERS:
            raise UsageError(f"player must be in 0..{MAX_PLAYERS - 1}, got {player}")
        self.player = player
        self._rng = random.Random(seed * 2 + player)

    def action(self, game: PongGame) -> int:
        s = game.state
        if self.player >= s.players:
            raise UsageError(f"player {self.player} has no seat in a {s.players}-player game")
        if self._rng.random() < self.HESITATE:
            return 0
        paddle = s.paddles[self.player]
        target = s.ball_y + BALL_SIZE // 2 - PADDLE_H // 2
        if target < paddle - PADDLE_SPEED:
            return UP
        if target > paddle + PADDLE_SPEED:
            return DOWN
        return 0
