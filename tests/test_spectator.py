"""A spectator's game (p2p_transport.rollback.spectator) fed what the server's spectator feed sends:
the inputs of two Pong matches played under the rollback layer over a lossy simulated link
(tests/rollback_sim.py), and of a seeded three-player game, in order, shuffled and repeated, and
to a spectator that starts 5 s late. No server here: tests/test_spectator_feed.py has it."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from p2p_demo.pong import PongGame
from p2p_transport.errors import InvalidStateError, UsageError
from p2p_transport.rollback import replay
from p2p_transport.rollback.session import episode_span
from p2p_transport.rollback.spectator import (
    CATCH_UP_BEHIND_FRAMES,
    MAX_FRAMES_PER_TICK,
    SpectatorSession,
)
from p2p_transport.wire.codec import (
    MAX_INPUTS_PER_RECORD,
    decode_input_record,
    encode_input_packet,
    encode_input_record,
    encode_v1_episode_end,
)
from p2p_transport.wire.messages import MessageType
from tests.rollback_sim import simulate_matches

SEED = 21
EPISODE_FRAMES = 600
#: The players' ticks between an episode's last frame and the feed's packet of its end (the
#: end is sent once the frame is confirmed, a round trip or so later).
END_AFTER_TICKS = 2
#: A spectator that starts 5 s into the game, at 60 Hz.
LATE_TICKS = 300
#: What the players' rollback layer sends for the frames between an episode's end and the next
#: one's start.
IDLE = 0

Records = list[dict[str, Any]]
RECORD_KEYS = ("episode", "params", "frames", "final_checksum", "inputs")


@pytest.fixture(scope="module")
def match_records() -> Records:
    """Two episodes of Pong under the rollback layer over a lossy link, as both players recorded
    them (identical)."""
    run = simulate_matches(
        loss=0.1, one_way_ms=30.0, episode_frames=EPISODE_FRAMES, episodes=2, seed=SEED
    )
    a, b = run.matches["a"].records(), run.matches["b"].records()
    assert a == b and len(a) == 2
    # What a spectator's record holds of it (a player's may say more).
    return [{key: record[key] for key in RECORD_KEYS if key in record} for record in a]


def envelope(player: int, message: bytes) -> bytes:
    return bytes((player,)) + message


def inputs_packet(player: int, inputs: Sequence[tuple[int, int]]) -> bytes:
    return envelope(player, encode_input_record(player, inputs))


def live_feed(records: Records, players: int) -> list[list[bytes]]:
    """What the feed sends a spectator at each of the players' ticks, for finished episodes:
    each frame's inputs, one packet per player (a player's relayed packet brings one new
    input), and :data:`END_AFTER_TICKS` after an episode's last frame every player's end, with
    the idle inputs the players sent for the frames up to the next episode's start."""
    ticks: list[list[bytes]] = []
    base = 0
    ends: list[tuple[int, list[bytes]]] = []
    for record in records:
        frames = record["frames"]
        for frame, row in enumerate(record["inputs"]):
            ticks.append([inputs_packet(p, [(base + frame, row[p])]) for p in range(players)])
        following = base + episode_span([frames - 1] * players)
        gap = [(frame, IDLE) for frame in range(base + frames, following)]
        packets = [inputs_packet(p, gap) for p in range(players)]
        packets += [
            envelope(p, encode_v1_episode_end(frames - 1, record["episode"]))
            for p in range(players)
        ]
        ends.append((len(ticks) - 1 + END_AFTER_TICKS, packets))
        base = following
    ticks += [[] for _ in range(END_AFTER_TICKS)]
    for tick, packets in ends:
        ticks[tick] += packets
    return ticks


def items(packet: bytes) -> int:
    """The inputs a packet of the feed holds, or 1 for an episode end."""
    if packet[1] == MessageType.EPISODE_END:
        return 1
    return len(decode_input_record(packet[1:]).inputs)


def catch_up_feed(ticks: list[list[bytes]], players: int) -> list[bytes]:
    """Everything of ``ticks`` as the feed sends a spectator that joins after them: the ends,
    then each player's inputs in records of up to :data:`MAX_INPUTS_PER_RECORD`."""
    ends: list[bytes] = []
    inputs: list[list[tuple[int, int]]] = [[] for _ in range(players)]
    for packet in (packet for tick in ticks for packet in tick):
        if packet[1] == MessageType.EPISODE_END:
            ends.append(packet)
        else:
            inputs[packet[0]] += decode_input_record(packet[1:]).inputs
    chunks = [
        inputs_packet(player, mine[start : start + MAX_INPUTS_PER_RECORD])
        for player, mine in enumerate(inputs)
        for start in range(0, len(mine), MAX_INPUTS_PER_RECORD)
    ]
    return ends + chunks


def watch(
    spectator: SpectatorSession,
    game: PongGame,
    arriving: Iterator[list[bytes]],
    episodes: int,
    max_ticks: int = 10_000,
) -> list[int]:
    """The spectator's page: each tick takes the packets that arrived (``next(arriving)``, none
    once it is exhausted), resets the game when an episode is over (episode ``n`` is played
    from ``PongGame(SEED + n)``, as the players' match does), and advances. Returns the frames
    each tick simulated, until the spectator finished ``episodes``."""
    simulated: list[int] = []
    for _ in range(max_ticks):
        for packet in next(arriving, []):
            spectator.on_packet(packet)
        if spectator.episode_over:
            if len(spectator.episodes) == episodes:
                return simulated
            game.reset(SEED + spectator.episode + 1)
            spectator.start_next_episode()
        simulated.append(spectator.advance())
    pytest.fail(f"not finished after {max_ticks} ticks: {spectator.stats()}")


def spectator_of(players: int = 2) -> tuple[SpectatorSession, PongGame]:
    game = PongGame(SEED, players=players)
    return SpectatorSession(game, players, episode_frames=EPISODE_FRAMES), game


# --- the players' records ------------------------------------------------------------------------


def test_a_spectator_fed_as_the_players_play_ends_on_their_records(match_records: Records) -> None:
    spectator, game = spectator_of()
    simulated = watch(spectator, game, iter(live_feed(match_records, 2)), episodes=2)
    assert spectator.episodes == match_records  # frames, inputs and final checksums
    stats = spectator.stats()
    assert stats["frames_simulated"] == 2 * EPISODE_FRAMES
    # Both players' inputs of both episodes, and of the frames before the next episode's start.
    assert stats["inputs_received"] == 2 * 2 * episode_span([EPISODE_FRAMES - 1])
    assert stats["ends_received"] == 4
    assert stats["duplicate_inputs"] == stats["malformed_packets"] == 0
    assert stats["episode_end_mismatches"] == 0
    # Never behind by more than the packets of one tick: one frame a tick, no catching up.
    assert set(simulated) <= {0, 1}
    assert stats["catch_up_ticks"] == 0


def test_shuffled_and_repeated_packets_make_the_same_game(match_records: Records) -> None:
    rng = random.Random(SEED)
    packets = [packet for tick in live_feed(match_records, 2) for packet in tick]
    repeated = rng.sample(packets, len(packets) // 5)
    everything = packets + repeated
    rng.shuffle(everything)
    spectator, game = spectator_of()
    # In ten bursts, a burst every 100 ticks.
    bursts = [everything[i::10] for i in range(10)]
    arriving = iter([burst if tick % 100 == 0 else [] for burst in bursts for tick in range(100)])
    simulated = watch(spectator, game, arriving, episodes=2)
    assert spectator.episodes == match_records
    stats = spectator.stats()
    repeats = stats["duplicate_inputs"] + stats["stale_inputs"]
    repeats += stats["duplicate_ends"] + stats["stale_ends"]
    assert repeats == sum(map(items, repeated))
    assert max(simulated) == MAX_FRAMES_PER_TICK


def test_a_spectator_5_s_late_catches_up_within_a_bounded_number_of_ticks(
    match_records: Records,
) -> None:
    ticks = live_feed(match_records, 2)
    # At its first tick it gets the server's catch-up of the first 5 s, then what is new.
    arriving = iter([catch_up_feed(ticks[: LATE_TICKS + 1], 2), *ticks[LATE_TICKS + 1 :]])
    spectator, game = spectator_of()
    behind: list[int] = []
    simulated: list[int] = []
    for packets in arriving:
        for packet in packets:
            spectator.on_packet(packet)
        if spectator.episode_over and not spectator.episodes[1:]:
            game.reset(SEED + 1)
            spectator.start_next_episode()
        if not behind:
            assert spectator.frames_behind == LATE_TICKS + 1
        simulated.append(spectator.advance())
        behind.append(spectator.frames_behind)
    assert max(simulated) == MAX_FRAMES_PER_TICK
    # It gains MAX_FRAMES_PER_TICK - 1 frames a tick on the players while far behind...
    caught_up = math.ceil(LATE_TICKS / (MAX_FRAMES_PER_TICK - 1))
    assert behind[caught_up] <= CATCH_UP_BEHIND_FRAMES
    # ... and stays that close: one frame a tick, as the players.
    assert max(behind[caught_up:]) <= CATCH_UP_BEHIND_FRAMES
    assert set(simulated[caught_up + 1 :]) <= {0, 1}
    watch(spectator, game, iter([]), episodes=2)
    assert spectator.episodes == match_records


# --- more players, and what is wrong ---------------------------------------------------------


def test_a_three_player_game_replays_to_the_same_checksums() -> None:
    players, frames = 3, 240
    rng = random.Random(SEED)
    records: Records = []
    for episode in range(2):
        inputs = [[rng.randrange(4) for _ in range(players)] for _ in range(frames)]
        checksum = replay(PongGame(SEED + episode, players=players), inputs).hex()
        records.append(
            {"episode": episode, "frames": frames, "final_checksum": checksum, "inputs": inputs}
        )
    game = PongGame(SEED, players=players)
    spectator = SpectatorSession(game, players, episode_frames=frames)
    watch(spectator, game, iter(live_feed(records, players)), episodes=2)
    assert spectator.episodes == records


def test_without_every_players_end_the_next_episode_waits(match_records: Records) -> None:
    record = match_records[0]
    spectator, game = spectator_of()
    for frame, row in enumerate(record["inputs"]):
        for player in (0, 1):
            spectator.on_packet(inputs_packet(player, [(frame, row[player])]))
    spectator.on_packet(envelope(0, encode_v1_episode_end(EPISODE_FRAMES - 1, 0)))
    watch(spectator, game, iter([]), episodes=1)
    game.reset(SEED + 1)
    spectator.start_next_episode()
    assert spectator.waiting and not spectator.episode_over
    with pytest.raises(InvalidStateError, match="already waits"):
        spectator.start_next_episode()
    assert spectator.advance() == 0
    # Player 1 ends it one frame later (a mismatch, counted): episode 1 starts past both.
    spectator.on_packet(envelope(1, encode_v1_episode_end(EPISODE_FRAMES, 0)))
    following = episode_span([EPISODE_FRAMES - 1, EPISODE_FRAMES])
    for player in (0, 1):
        spectator.on_packet(inputs_packet(player, [(following, 3)]))
    assert spectator.advance() == 1
    assert (spectator.episode, spectator.current_frame) == (1, 1)
    assert spectator.stats()["episode_end_mismatches"] == 1


def test_what_it_cannot_read_is_counted_not_raised() -> None:
    spectator, _ = spectator_of()
    good = inputs_packet(1, [(0, 2)])
    malformed = [
        b"",
        b"\x00",  # an envelope and nothing in it
        bytes((2,)) + encode_input_record(2, [(0, 1)]),  # no player 2 in a room of two
        bytes((0,)) + encode_input_record(1, [(0, 1)]),  # the envelope and the record disagree
        good[:-1],  # cut short
        envelope(0, encode_input_packet(0, 0, [(0, 1)])),  # a player's packet, not the feed's
        envelope(0, b"\xee junk"),
    ]
    for packet in malformed:
        spectator.on_packet(packet)
    spectator.on_packet(good)
    stats = spectator.stats()
    assert stats["malformed_packets"] == len(malformed)
    assert stats["packets"] == len(malformed) + 1
    assert stats["inputs_received"] == 1
    assert spectator.advance() == 0  # player 0's input for frame 0 is still missing


def test_a_game_that_raises_stops_the_spectator_without_raising() -> None:
    class Failing(PongGame):
        def advance(self, inputs: tuple[int, ...]) -> None:
            if self.state.frame == 3:
                raise ZeroDivisionError("frame 3")
            super().advance(inputs)

    spectator = SpectatorSession(Failing(SEED), 2)
    for player in (0, 1):
        spectator.on_packet(inputs_packet(player, [(frame, 1) for frame in range(20)]))
    assert spectator.advance() == 3
    assert spectator.game_error is not None
    assert (spectator.game_error.phase, spectator.game_error.frame) == ("advance", 3)
    assert spectator.advance() == 0
    assert spectator.stats()["game_error"] == "advance: ZeroDivisionError: frame 3"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"players": 1}, "players must be in 2..8"),
        ({"players": 9}, "players must be in 2..8"),
        ({"players": 2, "fps": 0}, "fps must be positive"),
        ({"players": 2, "episode_frames": 0}, "episode_frames must be"),
        ({"players": 2, "max_frames_per_tick": 0}, "max_frames_per_tick must be"),
    ],
)
def test_a_wrong_argument_is_the_callers_mistake(options: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        SpectatorSession(PongGame(), **options)


def test_the_next_episode_starts_only_after_this_one_is_over() -> None:
    spectator, _ = spectator_of()
    with pytest.raises(InvalidStateError, match="not over yet"):
        spectator.start_next_episode()
