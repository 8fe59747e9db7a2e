"""Team Pong for two to eight players: two players play the game exactly as before teams (the
checksums below were taken from the two-player code before teams existed), more players play a
deterministic game whose every seat can return the ball."""

from __future__ import annotations

import random

import pytest

from p2p_demo.pong import (
    BALL_SIZE,
    DOWN,
    PADDLE_H,
    PADDLE_W,
    SUB,
    UP,
    PongBot,
    PongGame,
    PongState,
    paddle_x,
)
from p2p_transport.errors import UsageError
from p2p_transport.rollback import SyncTestSession, replay

#: Bots of seed 11 playing the two-player game to its end, as the code before teams played it:
#: frames, score, final checksum.
TWO_PLAYER_BOT_GAME = (4118, (1, 5), "a53abc35a0a4098f2be1fe9082a5410f")
#: 3000 frames of random inputs (random.Random(2024)) on PongGame(seed=3), before teams.
TWO_PLAYER_RANDOM_CHECKSUM = "29c7a9fe21474b919a44f66eae8bc720"
TWO_PLAYER_RANDOM_VIEW = {
    "frame": 3000,
    "width": 320,
    "height": 200,
    "paddles": [92, 100],
    "paddle_h": 40,
    "paddle_w": 6,
    "inset": 10,
    "ball": [268, 78],
    "ball_size": 6,
    "score": [19, 4],
}
#: A 4-player episode is over well within this many frames (the bots' games below end in
#: 2500..6300 frames for seeds 0..19).
MAX_EPISODE_FRAMES = 8000


def _bot_game(players: int, seed: int) -> tuple[PongGame, list[tuple[int, ...]]]:
    """Bots in every seat play an episode to its end; the game and every frame's inputs."""
    game = PongGame(seed, players=players)
    bots = [PongBot(seat, seed) for seat in range(players)]
    inputs = []
    while not game.done() and game.state.frame < MAX_EPISODE_FRAMES:
        frame_inputs = tuple(bot.action(game) for bot in bots)
        game.advance(frame_inputs)
        inputs.append(frame_inputs)
    return game, inputs


def _random_inputs(players: int, frames: int, seed: int) -> list[tuple[int, ...]]:
    rng = random.Random(seed)
    return [tuple(rng.randrange(4) for _ in range(players)) for _ in range(frames)]


# --- two players: as before teams -------------------------------------------------------------


def test_two_players_play_the_game_from_before_teams() -> None:
    frames, score, digest = TWO_PLAYER_BOT_GAME
    game, _ = _bot_game(2, seed=11)
    assert game.done()
    assert (game.state.frame, (game.state.score0, game.state.score1)) == (frames, score)
    assert game.checksum().hex() == digest

    game = PongGame(seed=3)
    for frame_inputs in _random_inputs(2, 3000, seed=2024):
        game.advance(frame_inputs)
    assert game.checksum().hex() == TWO_PLAYER_RANDOM_CHECKSUM
    view = game.view()
    assert {key: view[key] for key in TWO_PLAYER_RANDOM_VIEW} == TWO_PLAYER_RANDOM_VIEW
    assert (view["players"], view["paddle_x"]) == (2, [10, 304])
    assert game.state.more_paddles == ()


# --- more players: deterministic --------------------------------------------------------------


@pytest.mark.parametrize("players", [3, 4, 8])
def test_the_same_inputs_give_the_same_game(players: int) -> None:
    inputs = _random_inputs(players, 2000, seed=players)
    first = replay(PongGame(5, players=players), inputs)
    assert replay(PongGame(5, players=players), inputs) == first
    assert replay(PongGame(6, players=players), inputs) != first  # another seed, another game
    # A seat beyond the first two moves the game too: its input is not ignored.
    moved = [(*frame[:-1], frame[-1] ^ 3) for frame in inputs]
    assert replay(PongGame(5, players=players), moved) != first


@pytest.mark.parametrize("players", [3, 4, 8])
def test_a_snapshot_mid_game_gives_the_same_continuation(players: int) -> None:
    game = PongGame(9, players=players)
    inputs = _random_inputs(players, 1500, seed=100 + players)
    for frame_inputs in inputs[:700]:
        game.advance(frame_inputs)
    snapshot = game.save_state()
    kept = repr(snapshot)
    after = []
    for frame_inputs in inputs[700:]:
        game.advance(frame_inputs)
        after.append(game.checksum())
    assert repr(snapshot) == kept  # advancing did not change the snapshot
    game.load_state(snapshot)
    again = []
    for frame_inputs in inputs[700:]:
        game.advance(frame_inputs)
        again.append(game.checksum())
    assert again == after
    assert len(set(after)) == len(after)  # every frame's state differs: the frame counter


@pytest.mark.parametrize("players", [3, 4, 8])
def test_synctest_passes_team_pong(players: int) -> None:
    _, inputs = _bot_game(players, seed=2)
    sync = SyncTestSession(PongGame(2, players=players), num_players=players, check_distance=4)
    for frame_inputs in inputs[:1500]:
        sync.advance_frame(frame_inputs)
    assert sync.frames_checked == (1500 - 3) * 4


def test_the_checksum_covers_every_seat() -> None:
    game = PongGame(players=8)
    base = game.checksum()
    for seat in range(2, 8):
        state = game.save_state()
        more = list(state[-1])
        more[seat - 2] += 1
        other = PongGame(players=8)
        other.load_state((*state[:-1], tuple(more)))
        assert other.checksum() != base, seat


# --- more players: the game ------------------------------------------------------------------


def test_bots_of_four_seats_play_an_episode_to_its_end() -> None:
    game, _ = _bot_game(4, seed=1)
    assert game.done()
    assert (game.state.frame, game.state.score0, game.state.score1) == (4074, 5, 2)
    assert game.checksum().hex() == "3067b9bb61b8bf0b5c0bf0740dc6513a"


def _ball_at(game: PongGame, x: int, vel_x: int, **paddles: int) -> None:
    """Put the ball in play at ``x`` (height 100 px) moving at ``vel_x``, flat; ``paddles`` are
    seat tops as ``seat0=..``; the other seats stand at the top edge, out of the ball's way."""
    s = game.state
    tops = [paddles.get(f"seat{seat}", 0) for seat in range(s.players)]
    s.paddle0, s.paddle1, s.more_paddles = tops[0], tops[1], tuple(tops[2:])
    s.ball_x, s.ball_y, s.vel_x, s.vel_y, s.serve_in = x, 100 * SUB, vel_x, 0, 0


BALL_LEVEL_TOP = 100 * SUB + BALL_SIZE // 2 - PADDLE_H // 2  # a paddle centred on the ball


def test_a_seat_2_paddle_returns_the_ball() -> None:
    game = PongGame(players=4)
    face = paddle_x(2) + PADDLE_W
    speed = 3 * SUB
    _ball_at(game, face + speed - SUB, -speed, seat2=BALL_LEVEL_TOP)
    game.advance((0, 0, 0, 0))
    assert game.state.vel_x > 0  # returned to the right, faster
    assert game.state.vel_x == speed + SUB // 4
    assert game.state.ball_x == face + SUB  # reflected back off the face
    # Without seat 2 in the way the same ball flies on, and seat 0 behind it returns it.
    game = PongGame(players=4)
    _ball_at(game, face + speed - SUB, -speed, seat0=BALL_LEVEL_TOP)
    for _ in range(40):
        game.advance((0, 0, 0, 0))
        if game.state.vel_x > 0:
            break
    assert game.state.vel_x > 0
    assert game.state.ball_x < paddle_x(2)  # returned behind seat 2's row, by seat 0


def test_a_seat_3_paddle_returns_the_ball_from_the_left() -> None:
    game = PongGame(players=4)
    face = paddle_x(3)
    speed = 5 * SUB
    _ball_at(game, face - BALL_SIZE - speed + SUB, speed, seat3=BALL_LEVEL_TOP)
    game.advance((0, 0, 0, 0))
    assert game.state.vel_x == -(speed + SUB // 4)
    assert game.state.ball_x + BALL_SIZE == face - SUB


def test_the_ball_passes_through_the_back_of_its_own_sides_paddle() -> None:
    """A left-side return flies through seat 2's paddle (seat 2 is on the left side too)."""
    game = PongGame(players=4)
    speed = 3 * SUB
    _ball_at(game, paddle_x(2) - BALL_SIZE - speed + SUB, speed, seat2=BALL_LEVEL_TOP)
    for _ in range(5):
        game.advance((0, 0, 0, 0))
    assert game.state.vel_x == speed
    assert game.state.ball_x > paddle_x(2) + PADDLE_W


def test_the_side_that_scores_is_the_side_of_the_seats() -> None:
    """A ball through the right goal is the left side's point, the right side serves next."""
    game = PongGame(players=4)
    _ball_at(game, 300 * SUB, 7 * SUB)  # every paddle at the top, the ball at 100 px
    for _ in range(10):
        game.advance((0, 0, 0, 0))
    s = game.state
    assert (s.score0, s.score1, s.serve_to) == (1, 0, 1)


def test_the_view_draws_every_seat() -> None:
    game = PongGame(players=8)
    game.advance((UP, 0, 0, 0, 0, 0, 0, DOWN))
    view = game.view()
    assert view["players"] == 8
    assert view["paddle_x"] == [10, 304, 46, 268, 82, 232, 118, 196]
    centred = (200 - 40) // 2
    assert view["paddles"] == [centred - 4, *[centred] * 6, centred + 4]
    # The front rows stand clear of the ball at the serve.
    ball_left = view["ball"][0]
    assert view["paddle_x"][6] + view["paddle_w"] < ball_left
    assert ball_left + view["ball_size"] < view["paddle_x"][7]


def test_state_seats() -> None:
    state = PongState(paddle0=1, paddle1=2, more_paddles=(3, 4))
    assert (state.players, state.paddles) == (4, (1, 2, 3, 4))


# --- the caller's mistakes --------------------------------------------------------------------


@pytest.mark.parametrize("players", [0, 1, 9, -2])
def test_a_wrong_number_of_players_is_refused(players: int) -> None:
    with pytest.raises(UsageError, match=rf"players must be in 2\.\.8 .*got {players}"):
        PongGame(players=players)


def test_players_must_be_an_int() -> None:
    with pytest.raises(UsageError, match="players must be an int, got bool"):
        PongGame(players=True)
    with pytest.raises(UsageError, match="players must be an int, got str"):
        PongGame(players="4")  # type: ignore[arg-type]


def test_inputs_must_have_one_action_per_player() -> None:
    game = PongGame(players=4)
    with pytest.raises(UsageError, match=r"one action per player \(4\), got \(0, 0\)"):
        game.advance((0, 0))
    with pytest.raises(UsageError, match=r"one action per player \(2\)"):
        PongGame().advance((0, 0, 0))
    assert game.state.frame == 0


def test_a_bot_needs_a_seat() -> None:
    with pytest.raises(UsageError, match=r"player must be in 0\.\.7, got 8"):
        PongBot(8)
    with pytest.raises(UsageError, match="player 5 has no seat in a 4-player game"):
        PongBot(5).action(PongGame(players=4))
