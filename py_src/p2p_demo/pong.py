"""Pong for two players, deterministic to the bit: the demo's real game.

Integer state only (positions in sixteenths of a pixel), no floats, and the one random choice
(the serve's angle) comes from a seeded generator kept in the state. The same inputs from the
same state therefore give the same game on every machine, which is what rollback needs.

Actions are bit sets: :data:`UP` and :data:`DOWN` (both or neither: stand still).
"""

from __future__ import annotations

import hashlib
import random
import struct
from dataclasses import astuple, dataclass
from typing import Any, Final

__all__ = ["DOWN", "UP", "PongBot", "PongGame", "PongState"]

UP: Final = 1
DOWN: Final = 2
#: Sub-pixel units per pixel: slow speeds and angles without floats.
SUB: Final = 16
WIDTH: Final = 320 * SUB
HEIGHT: Final = 200 * SUB
PADDLE_H: Final = 40 * SUB
PADDLE_W: Final = 6 * SUB
#: Paddles sit this far in from each side.
PADDLE_INSET: Final = 10 * SUB
PADDLE_SPEED: Final = 4 * SUB
BALL_SIZE: Final = 6 * SUB
#: The serve's horizontal speed (px per frame in SUB units): 3 px, crossing the field in ~1.7 s.
SERVE_SPEED: Final = 3 * SUB
#: Each return speeds the ball up by this much, to at most MAX_SPEED.
SPEEDUP: Final = SUB // 4
MAX_SPEED: Final = 7 * SUB
#: A pause before each serve (1 s at 60 Hz) so players see the point.
SERVE_FRAMES: Final = 60
#: The first to this many points wins the episode.
WIN_SCORE: Final = 5
_LCG_MULTIPLIER: Final = 1103515245
_LCG_INCREMENT: Final = 12345


@dataclass(slots=True)
class PongState:
    frame: int = 0
    paddle0: int = (HEIGHT - PADDLE_H) // 2
    paddle1: int = (HEIGHT - PADDLE_H) // 2
    ball_x: int = (WIDTH - BALL_SIZE) // 2
    ball_y: int = (HEIGHT - BALL_SIZE) // 2
    vel_x: int = 0
    vel_y: int = 0
    score0: int = 0
    score1: int = 0
    serve_in: int = SERVE_FRAMES
    #: Who serves next: the ball goes towards this player.
    serve_to: int = 0
    rng: int = 1


_PACK = struct.Struct(">" + "q" * len(astuple(PongState())))


class PongGame:
    """The game the rollback layer drives (:class:`p2p_transport.rollback.Game`).

    ``seed`` picks the serves' angles; both players must use the same. ``perturb_at`` makes this
    copy differ from its peer from that frame on (the ball shifts by a sixteenth of a pixel), the
    deliberately non-deterministic variant the desync tests use.
    """

    def __init__(self, seed: int = 0, perturb_at: int | None = None) -> None:
        self.perturb_at = perturb_at
        self.reset(seed)

    def reset(self, seed: int) -> None:
        """A new episode: the paddles centred, the score 0:0, serves drawn from ``seed``."""
        self.state = PongState(rng=seed & 0x7FFFFFFF or 1)

    # --- Game ---------------------------------------------------------------------------------

    def save_state(self) -> tuple[int, ...]:
        return astuple(self.state)

    def load_state(self, state: object) -> None:
        assert isinstance(state, tuple)
        self.state = PongState(*state)

    def checksum(self) -> bytes:
        return hashlib.blake2b(_PACK.pack(*astuple(self.state)), digest_size=16).digest()

    def done(self) -> bool:
        return max(self.state.score0, self.state.score1) >= WIN_SCORE

    def advance(self, inputs: tuple[int, ...]) -> None:
        s = self.state
        s.paddle0 = _move_paddle(s.paddle0, inputs[0])
        s.paddle1 = _move_paddle(s.paddle1, inputs[1])
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
        left_face = PADDLE_INSET + PADDLE_W
        right_face = WIDTH - PADDLE_INSET - PADDLE_W
        # A paddle returns the ball in the frame it crosses the paddle's face (at most one
        # step past it), reflected back to the face's side.
        if (
            s.vel_x < 0
            and left_face - MAX_SPEED < s.ball_x <= left_face
            and _hits(s.paddle0, s.ball_y)
        ):
            s.ball_x = 2 * left_face - s.ball_x
            s.vel_x, s.vel_y = _return(s.vel_x, s.vel_y, s.paddle0, s.ball_y)
        elif (
            s.vel_x > 0
            and right_face <= s.ball_x + BALL_SIZE < right_face + MAX_SPEED
            and _hits(s.paddle1, s.ball_y)
        ):
            s.ball_x = 2 * (right_face - BALL_SIZE) - s.ball_x
            s.vel_x, s.vel_y = _return(s.vel_x, s.vel_y, s.paddle1, s.ball_y)
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
        s.serve_to = 1 - scorer  # the next serve goes to the player who conceded
        s.ball_x, s.ball_y = (WIDTH - BALL_SIZE) // 2, (HEIGHT - BALL_SIZE) // 2
        s.vel_x = s.vel_y = 0
        s.serve_in = SERVE_FRAMES

    def view(self) -> dict[str, Any]:
        """What the page draws, in pixels."""
        s = self.state
        return {
            "frame": s.frame,
            "width": WIDTH // SUB,
            "height": HEIGHT // SUB,
            "paddles": [s.paddle0 // SUB, s.paddle1 // SUB],
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
    """A scripted player for headless runs: follows the ball, and now and then hesitates (from
    its own seeded generator), so its inputs change often and the peer's predictions miss."""

    #: Chance per frame of doing nothing: a bot that never hesitates is too regular to test
    #: prediction.
    HESITATE: Final = 0.15

    def __init__(self, player: int, seed: int = 0) -> None:
        self.player = player
        self._rng = random.Random(seed * 2 + player)

    def action(self, game: PongGame) -> int:
        s = game.state
        if self._rng.random() < self.HESITATE:
            return 0
        paddle = s.paddle0 if self.player == 0 else s.paddle1
        target = s.ball_y + BALL_SIZE // 2 - PADDLE_H // 2
        if target < paddle - PADDLE_SPEED:
            return UP
        if target > paddle + PADDLE_SPEED:
            return DOWN
        return 0
