"""A player who leaves a room of more than two, as the server keeps it: the reports the players who
stay exchange (``SEAT_LEFT``) go into the input record and the spectator feed, and the reader and
a spectator agree on them as the players do, so both end on the players' very episode records
(``left`` included) and checksums.

The rooms are played on tests/mesh_sim.py's seeded lossy mesh, each session's DataChannel tapped:
every packet a player's sessions sent is what the relay gets from that player (the default route
sends inputs and control messages on the relay too, each packet as it goes on the DataChannel),
in the order they were sent, on the mesh's virtual clock. No server process here:
tests/test_spectator_feed.py has the feed over real sockets.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from p2p_server.input_recorder import InputRecorder
from p2p_server.limits import LogThrottle
from p2p_server.spectator_feed import SpectatorFeed
from p2p_server.stats import ServerStats
from p2p_transport import P2PSession
from p2p_transport.protocol.sender import DataChannelLike
from p2p_transport.rollback import read_input_record, replay
from p2p_transport.rollback.input_record import (
    INPUT_RECORD_FORMAT,
    SeatReport,
    end_line,
    header_line,
    input_line,
    left_line,
)
from p2p_transport.rollback.session import MAX_INPUT_DELAY
from p2p_transport.rollback.spectator import SpectatorSession
from p2p_transport.timing import Clock
from p2p_transport.wire.codec import (
    ACKED_INPUT_TYPE,
    decode,
    encode_control,
    encode_input_record,
)
from p2p_transport.wire.control_payloads import RollbackKind
from p2p_transport.wire.messages import ControlMessage, MessageType
from tests import mesh_sim
from tests.mesh_sim import Leave, MeshRun, RingGame, simulate_mesh

pytestmark = pytest.mark.timeout(120)

#: (virtual ms, sender, packet): what the relay got, in order.
Sent = list[tuple[float, int, bytes]]
#: What a spectator's episode record holds of the players'.
SPECTATOR_KEYS = ("episode", "params", "frames", "final_checksum", "inputs", "left")
#: What the reader's episode record holds of the players' (its checksum is replayed).
READER_KEYS = ("episode", "frames", "inputs", "left")
#: The relay missed the packets of the leaver's inputs it sent in its last this many ms.
MISSED_MS = 150.0


class _Tap:
    """A session's DataChannel that also keeps every packet the session sends on it."""

    def __init__(self, channel: DataChannelLike, player: int, clock: Clock, sent: Sent) -> None:
        self._channel = channel
        self._player = player
        self._clock = clock
        self._sent = sent

    @property
    def readyState(self) -> str:
        return self._channel.readyState

    @property
    def bufferedAmount(self) -> int:
        return self._channel.bufferedAmount

    def send(self, data: bytes) -> None:
        self._sent.append((self._clock(), self._player, bytes(data)))
        self._channel.send(data)


@dataclass(frozen=True)
class Played:
    run: MeshRun
    sent: Sent
    players: int
    seed: int
    frames: int
    episodes: int

    def records(self) -> list[dict[str, Any]]:
        """The episode records of the players who stayed (the same for each: checked)."""
        staying = self.run.staying()
        records = staying[0].rollback.episodes
        assert len(records) == self.episodes
        assert all(player.rollback.episodes == records for player in staying)
        return records

    def left_of(self, player: int) -> list[int]:
        """Where the players who stayed agreed ``player`` stops: [episode, frame]."""
        detail: list[int] = self.run.staying()[0].rollback.stats()["peers"][str(player)]["left"]
        return detail


def play(players: int, *, seed: int, frames: int, episodes: int, leaving: list[Leave]) -> Played:
    sent: Sent = []

    def tapped(
        player: int,
        peer: int,
        on_input: Any,
        *,
        channel: DataChannelLike,
        clock: Clock,
        **rest: Any,
    ) -> P2PSession:
        tap = _Tap(channel, player, clock, sent)
        return P2PSession(player, peer, on_input, channel=tap, clock=clock, **rest)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mesh_sim, "P2PSession", tapped)
        run = simulate_mesh(
            players, frames=frames, episodes=episodes, loss=0.3, seed=seed, leaving=leaving
        )
    return Played(run, sent, players, seed, frames, episodes)


ROOMS: dict[str, dict[str, Any]] = {
    # Player 3 leaves at its frame 300 of the first of two episodes.
    "mid-episode": {"players": 4, "seed": 5, "leaving": [Leave(3, 300)]},
    # It leaves once it simulated the first episode's last frame: that one is all its own, the
    # next all idle.
    "as-an-episode-ends": {"players": 4, "seed": 9, "leaving": [Leave(3, 600)]},
    # Two of five leave, one after the other.
    "two-leave": {"players": 5, "seed": 33, "leaving": [Leave(1, 250), Leave(4, 500)]},
}


@pytest.fixture(scope="module", params=list(ROOMS))
def played(request: pytest.FixtureRequest) -> Played:
    return play(frames=600, episodes=2, **ROOMS[request.param])


@pytest.fixture(scope="module")
def mid_episode() -> Played:
    return play(frames=600, episodes=2, **ROOMS["mid-episode"])


def missing_last_inputs(played: Played) -> Sent:
    """What the relay got if it missed the leaver's input packets of its last :data:`MISSED_MS`."""
    ((leaver, left_at),) = played.run.left_at_ms.items()
    return [
        (at, sender, packet)
        for at, sender, packet in played.sent
        if not (sender == leaver and packet[0] == ACKED_INPUT_TYPE and at > left_at - MISSED_MS)
    ]


def is_report(packet: bytes) -> bool:
    """Whether ``packet`` (a player's, or the feed's after its envelope) is a ``SEAT_LEFT``
    report."""
    message = decode(packet) if packet[0] == MessageType.CONTROL else None
    return isinstance(message, ControlMessage) and message.kind == RollbackKind.SEAT_LEFT


# --- the input record ---------------------------------------------------------------------------


def record(tmp_path: Path, played: Played, sent: Sent) -> tuple[Path, ServerStats]:
    """The room's record file from what the relay got, as the server writes it."""
    stats = ServerStats()
    recorder = InputRecorder(tmp_path / "records", stats, LogThrottle(60.0))
    for _, sender, packet in sent:
        recorder.relayed("r", played.players, sender, packet)
    recorder.close_all()
    (path,) = (tmp_path / "records").rglob("*.jsonl")
    return path, stats


def assert_reads_as_the_players(path: Path, played: Played) -> None:
    """The record reads as the players' episodes, each ended, and replays to their checksums."""
    episodes = read_input_record(path, idle_action=RingGame.idle_action)["episodes"]
    records = played.records()
    assert len(episodes) == len(records)
    for episode, mine in zip(episodes, records, strict=True):
        assert episode["ended"] is True
        assert {key: episode.get(key) for key in READER_KEYS} == {
            key: mine.get(key) for key in READER_KEYS
        }
        game = RingGame(played.players, played.seed + episode["episode"])
        assert replay(game, episode["inputs"]).hex() == mine["final_checksum"]


def left_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if '"left"' in line]


def test_the_record_reads_as_the_players_records(tmp_path: Path, played: Played) -> None:
    path, stats = record(tmp_path, played, played.sent)
    assert_reads_as_the_players(path, played)
    assert stats.refusals == {}
    # One line per report: each player who stayed reported each one who left, once, though it
    # sent its report to every other player who stayed, and resent some; a player who left later
    # may have reported an earlier one before it went.
    reports = {(line["by"], line["left"]) for line in left_lines(path)}
    leavers = set(played.run.left_at_ms)
    staying = set(range(played.players)) - leavers
    assert {(r, p) for r in staying for p in leavers} <= reports
    assert reports <= {(r, p) for r in range(played.players) for p in leavers if r != p}
    assert sum(is_report(packet) for _, _, packet in played.sent) > len(reports)


def test_inputs_the_relay_missed_come_from_the_reports(tmp_path: Path, mid_episode: Played) -> None:
    path, _ = record(tmp_path, mid_episode, missing_last_inputs(mid_episode))
    # The record lacks some of the leaver's inputs up to where the players agree it stops.
    agreed = mid_episode.left_of(3)[1]
    held = {
        entry[0]
        for entry in map(json.loads, path.read_text().splitlines()[1:])
        if isinstance(entry, list) and entry[1] == 3
    }
    assert not set(range(agreed + 1)) <= held
    assert_reads_as_the_players(path, mid_episode)


def test_reports_repeated_and_in_another_order_read_the_same(
    tmp_path: Path, mid_episode: Played
) -> None:
    reports = [item for item in mid_episode.sent if is_report(item[2])]
    others = [item for item in mid_episode.sent if not is_report(item[2])]
    # Every report after the game, the last sent first, each twice.
    path, _ = record(tmp_path, mid_episode, others + reports[::-1] * 2)
    assert len(left_lines(path)) == 3
    assert_reads_as_the_players(path, mid_episode)


# --- the spectator feed and a spectator ---------------------------------------------------------


def feed(played: Played, sent: Sent, *, join_after: bool = False) -> list[tuple[float, bytes]]:
    """What the feed sends a spectator, and when: live from the start, or (``join_after``) all
    of it as the catch-up of a spectator that joins once the game is over."""
    got: list[tuple[float, bytes]] = []
    now = 0.0

    async def send(sid: str, packet: bytes) -> bool:
        got.append((now, packet))
        return True

    async def scenario() -> None:
        nonlocal now
        spectators = SpectatorFeed(send, lambda sid: 0, 8, ServerStats(), LogThrottle(60.0))
        if not join_after:
            spectators.watch("r", "w")
        for at, sender, packet in sent:
            now = at
            await spectators.relayed("r", played.players, sender, packet)
        if join_after:
            spectators.watch("r", "w")
            while spectators._tasks:
                await asyncio.sleep(0)
        spectators.stop()

    asyncio.run(scenario())
    return got


def watch(played: Played, packets: list[tuple[float, bytes]]) -> SpectatorSession:
    """A spectator's page on the mesh's clock: each tick takes the packets sent by then, resets
    the game when an episode is over (as the players' loops do) and advances, until it has
    simulated every episode."""
    game = RingGame(played.players, played.seed)
    spectator = SpectatorSession(game, played.players, episode_frames=played.frames)
    now, taken = 0.0, 0
    while not (spectator.episode_over and len(spectator.episodes) == played.episodes):
        assert now < 120_000, f"not finished: {spectator.stats()}"
        while taken < len(packets) and packets[taken][0] <= now:
            spectator.on_packet(packets[taken][1])
            taken += 1
        if spectator.episode_over:
            game.reset(played.seed + spectator.episode + 1)
            spectator.start_next_episode()
        spectator.advance()
        now += spectator.frame_ms
    return spectator


def assert_watched_as_the_players_played(spectator: SpectatorSession, played: Played) -> None:
    expected = [
        {key: mine[key] for key in SPECTATOR_KEYS if key in mine} for mine in played.records()
    ]
    assert spectator.episodes == expected
    stats = spectator.stats()
    assert stats["left_mismatches"] == stats["episode_end_mismatches"] == 0
    assert stats["malformed_packets"] == 0
    assert stats["left"] == {str(p): played.left_of(p) for p in played.run.left_at_ms}


@pytest.mark.parametrize("join_after", [False, True], ids=["live", "joins-after"])
def test_a_spectator_ends_on_the_players_records(played: Played, join_after: bool) -> None:
    spectator = watch(played, feed(played, played.sent, join_after=join_after))
    assert_watched_as_the_players_played(spectator, played)


def test_a_spectator_takes_what_the_relay_missed_from_the_reports(mid_episode: Played) -> None:
    spectator = watch(mid_episode, feed(mid_episode, missing_last_inputs(mid_episode)))
    assert_watched_as_the_players_played(spectator, mid_episode)


def test_a_spectator_waits_for_reports_that_come_late_repeated_and_reordered(
    mid_episode: Played,
) -> None:
    packets = feed(mid_episode, mid_episode.sent)
    reports = [packet for _, packet in packets if is_report(packet[1:])]
    assert len(reports) == 3  # one per (reporter, player who left)
    packets = [item for item in packets if not is_report(item[1][1:])]
    # Without them, a spectator waits at the first frame the leaver sent no input for.
    waiting = SpectatorSession(RingGame(4, mid_episode.seed), 4, episode_frames=600)
    for _, packet in packets:
        waiting.on_packet(packet)
    while waiting.advance():
        pass
    agreed = mid_episode.left_of(3)
    assert (waiting.episode, waiting.current_frame) == (agreed[0], agreed[1] + 1)
    # They come 5 s after the game, the last first, each twice.
    late = max(at for at, _ in packets) + 5000.0
    packets += [(late, packet) for packet in reports[::-1] * 2]
    spectator = watch(mid_episode, packets)
    assert_watched_as_the_players_played(spectator, mid_episode)
    stats = spectator.stats()
    assert (stats["reports_received"], stats["duplicate_reports"]) == (3, 3)


# --- a few frames by hand -----------------------------------------------------------------------

#: A room of three; player 2 leaves. It played :data:`LEAVER_ACTIONS` for frames 0 to 9.
LEAVER = 2
LEAVER_ACTIONS = bytes([3] * 6 + [4] * 4)
#: The relay got the leaver's inputs up to frame 5; player 0 holds them up to frame 7, player 1
#: up to frame 9 (the furthest), each handing on its last three.
RELAYED_TO = 5
REPORTS = {
    0: SeatReport(LEAVER, 0, 7, LEAVER_ACTIONS[5:8]),
    1: SeatReport(LEAVER, 0, 9, LEAVER_ACTIONS[7:10]),
}
FRAMES = 20
STAYING_ACTION = 1


def expected_rows() -> list[list[int]]:
    """Players 0 and 1 play :data:`STAYING_ACTION`; player 2 its actions to frame 9, then idle."""
    leaver = list(LEAVER_ACTIONS) + [RingGame.idle_action] * (FRAMES - len(LEAVER_ACTIONS))
    return [[STAYING_ACTION, STAYING_ACTION, action] for action in leaver]


def report_packet(reporter: int, report: SeatReport) -> bytes:
    """A report as the feed sends it."""
    return bytes((reporter,)) + encode_control(0, RollbackKind.SEAT_LEFT, report.encode())


def simulate(spectator: SpectatorSession) -> int:
    """Advance until nothing more can be simulated; the frames simulated."""
    done = 0
    while (step := spectator.advance()) > 0:
        done += step
    return done


def fed_by_hand(leaver_actions: bytes) -> SpectatorSession:
    """A spectator of :func:`expected_rows`'s room that has every input of players 0 and 1, and
    the leaver's ``leaver_actions`` from frame 0."""
    spectator = SpectatorSession(RingGame(3, 1), 3, episode_frames=FRAMES)
    for player in (0, 1):
        inputs = [(frame, STAYING_ACTION) for frame in range(FRAMES)]
        spectator.on_packet(bytes((player,)) + encode_input_record(player, inputs))
    leaver = list(enumerate(leaver_actions))
    spectator.on_packet(bytes((LEAVER,)) + encode_input_record(LEAVER, leaver))
    return spectator


def assert_ends_on_expected_rows(spectator: SpectatorSession) -> None:
    (episode,) = spectator.episodes
    assert episode["inputs"] == expected_rows()
    assert episode["left"] == {"2": 9}
    assert episode["final_checksum"] == replay(RingGame(3, 1), expected_rows()).hex()
    assert spectator.stats()["left"] == {"2": [0, 9]}


def test_a_spectator_waits_at_the_furthest_report_until_every_report_is_in() -> None:
    spectator = fed_by_hand(LEAVER_ACTIONS[: RELAYED_TO + 1])
    assert simulate(spectator) == RELAYED_TO + 1  # its next input has not come
    # Player 0's report vouches for its inputs to frame 7, and hands on 6 and 7.
    spectator.on_packet(report_packet(0, REPORTS[0]))
    assert simulate(spectator) == 2 and spectator.current_frame == 8
    assert spectator.stats()["left"] == {"2": "pending"}
    spectator.on_packet(report_packet(0, REPORTS[0]))  # resent
    assert simulate(spectator) == 0
    # Player 1's is the last one due, and the furthest: its inputs end at frame 9.
    spectator.on_packet(report_packet(1, REPORTS[1]))
    assert simulate(spectator) == FRAMES - 8 and spectator.episode_over
    assert_ends_on_expected_rows(spectator)
    stats = spectator.stats()
    assert (stats["reports_received"], stats["duplicate_reports"]) == (2, 1)


def test_a_report_holds_back_the_inputs_past_it_the_relay_carried() -> None:
    # The relay carried two inputs it sent past frame 9 that no player who stays got.
    spectator = fed_by_hand(LEAVER_ACTIONS + bytes([4, 4]))
    spectator.on_packet(report_packet(0, REPORTS[0]))
    assert simulate(spectator) == 8
    spectator.on_packet(report_packet(1, REPORTS[1]))
    assert simulate(spectator) == FRAMES - 8
    assert_ends_on_expected_rows(spectator)  # idle from frame 10, as the players agree
    assert spectator.stats()["left_mismatches"] == 0


def test_frames_simulated_past_the_agreement_before_any_report_are_counted() -> None:
    spectator = fed_by_hand(LEAVER_ACTIONS + bytes([4, 4]))
    assert simulate(spectator) == 12  # no word yet that it left
    for reporter in (0, 1):
        spectator.on_packet(report_packet(reporter, REPORTS[reporter]))
    assert spectator.stats()["left_mismatches"] == 1
    assert simulate(spectator) == FRAMES - 12
    assert [row[LEAVER] for row in spectator.episodes[0]["inputs"][9:13]] == [4, 4, 4, 0]


def write_record(path: Path, *lines: str, header: str = header_line("r", 3, 0)) -> Path:
    path.write_text(header + "".join(lines))
    return path


def by_hand_lines(reporters: list[int]) -> list[str]:
    """The record of :func:`expected_rows`'s room: every input the relay got, the players'
    ends, and the reports of ``reporters``."""
    lines = [input_line(f, p, STAYING_ACTION) for f in range(FRAMES + 2) for p in (0, 1)]
    lines += [input_line(f, LEAVER, LEAVER_ACTIONS[f]) for f in range(RELAYED_TO + 1)]
    lines += [end_line(p, 0, FRAMES - 1) for p in (0, 1)]
    lines += [left_line(reporter, REPORTS[reporter]) for reporter in reporters]
    return lines


@pytest.mark.parametrize(
    ("reporters", "frames", "ended"),
    [
        ([], RELAYED_TO + 1, False),  # no word that it left: its inputs end at frame 5
        ([0], 8, False),  # as far as a report vouches for its inputs
        ([0, 1], FRAMES, True),
        ([1, 0, 1], FRAMES, True),  # another order, and a repeat (the first stays)
    ],
)
def test_the_reader_goes_as_far_as_the_reports_say(
    tmp_path: Path, reporters: list[int], frames: int, ended: bool
) -> None:
    path = write_record(tmp_path / "r.jsonl", *by_hand_lines(reporters))
    (episode,) = read_input_record(path)["episodes"]
    assert episode["inputs"] == expected_rows()[:frames]
    assert episode["ended"] is ended
    assert episode.get("left") == ({"2": 9} if ended else None)


def test_the_end_of_a_player_who_left_does_not_count_and_it_idles_through_the_next_episode(
    tmp_path: Path,
) -> None:
    # Its own game, on its own inputs past frame 9, ended the episode at frame 15.
    following = FRAMES + MAX_INPUT_DELAY
    lines = [*by_hand_lines([0, 1]), end_line(LEAVER, 0, 15)]
    lines += [input_line(following + f, p, STAYING_ACTION) for f in range(3) for p in (0, 1)]
    path = write_record(tmp_path / "r.jsonl", *lines)
    first, second = read_input_record(path)["episodes"]
    assert (first["frames"], first["ended"], first["left"]) == (FRAMES, True, {"2": 9})
    assert second["first_frame"] == following
    assert second["inputs"] == [[STAYING_ACTION, STAYING_ACTION, RingGame.idle_action]] * 3
    assert second["left"] == {"2": -1}


def test_idle_frames_hold_the_idle_action_the_reader_is_given(tmp_path: Path) -> None:
    path = write_record(tmp_path / "r.jsonl", *by_hand_lines([0, 1]))
    (episode,) = read_input_record(path, idle_action=4)["episodes"]
    assert [row[LEAVER] for row in episode["inputs"][10:]] == [4] * (FRAMES - 10)
    with pytest.raises(ValueError, match="idle_action"):
        read_input_record(path, idle_action=256)


def test_a_version_1_record_still_reads(tmp_path: Path) -> None:
    header = json.dumps(
        {
            "format": INPUT_RECORD_FORMAT,
            "version": 1,
            "room": "r",
            "players": 2,
            "started_unix_ms": 0,
        },
        separators=(",", ":"),
    )
    lines = [input_line(f, p, f % 4) for f in range(3) for p in (0, 1)]
    path = write_record(tmp_path / "r.jsonl", *lines, end_line(0, 0, 2), header=header + "\n")
    (episode,) = read_input_record(path)["episodes"]
    assert episode["inputs"] == [[0, 0], [1, 1], [2, 2]]
    assert "left" not in episode


@pytest.mark.parametrize(
    "line",
    [
        '{"left":2,"by":2,"episode":0,"frame":7,"actions":[]}\n',  # about its sender
        '{"left":3,"by":0,"episode":0,"frame":7,"actions":[]}\n',  # no player 3 in a room of 3
        '{"left":2,"by":0,"episode":0,"frame":1,"actions":[1,1,1]}\n',  # more than it holds
        '{"left":2,"by":0,"episode":0,"frame":7,"actions":[256]}\n',
        '{"left":2,"by":0,"episode":0,"frame":7,"actions":3}\n',
        '{"left":2,"by":0,"episode":0,"frame":7}\n',
    ],
)
def test_the_reader_refuses_a_left_line_no_recorder_writes(tmp_path: Path, line: str) -> None:
    path = write_record(tmp_path / "r.jsonl", line)
    with pytest.raises(ValueError, match=":2: not an input record line"):
        read_input_record(path)


def seat_left(sequence: int, report: SeatReport) -> bytes:
    """A player's control message carrying ``report``, as the relay gets it."""
    return encode_control(sequence, RollbackKind.SEAT_LEFT, report.encode())


UNTAKEN: list[tuple[int, int, SeatReport]] = [
    # (players, reporter, report): the players would not take these.
    (3, 0, SeatReport(3, 0, 7, b"")),  # no player 3 in a room of three
    (3, 2, SeatReport(2, 0, 7, b"")),  # about its sender
    (2, 0, SeatReport(1, 0, 7, b"")),  # a pair's game ends with the peer
]


@pytest.mark.parametrize(("players", "reporter", "report"), UNTAKEN)
def test_a_report_the_players_would_not_take_is_counted_not_raised(
    tmp_path: Path, players: int, reporter: int, report: SeatReport
) -> None:
    stats = ServerStats()
    recorder = InputRecorder(tmp_path, stats, LogThrottle(60.0))
    recorder.relayed("r", players, reporter, seat_left(0, report))
    recorder.close_all()
    assert stats.refusals == {"record_malformed": 1}
    assert list(tmp_path.rglob("*.jsonl")) == []  # nothing to record: no record started

    sent: list[bytes] = []

    async def send(sid: str, packet: bytes) -> bool:
        sent.append(packet)
        return True

    async def scenario() -> None:
        spectators = SpectatorFeed(send, lambda sid: 0, 8, ServerStats(), LogThrottle(60.0))
        spectators.watch("r", "w")
        await spectators.relayed("r", players, reporter, seat_left(0, report))
        assert spectators.kept == 0

    asyncio.run(scenario())
    assert sent == []

    spectator = SpectatorSession(RingGame(players), players)
    spectator.on_packet(bytes((reporter,)) + seat_left(0, report))
    stats_now = spectator.stats()
    assert (stats_now["malformed_packets"], stats_now["reports_received"]) == (1, 0)
    assert stats_now["left"] == {}


def test_the_recorder_and_the_feed_take_each_report_once(tmp_path: Path) -> None:
    report = SeatReport(3, 1, 40, bytes([2, 2]))
    # Player 0 sends it to players 1 and 2, and resends it to 1; player 1 sends its own.
    relayed: list[tuple[int, bytes]] = [
        (0, seat_left(5, report)),
        (0, seat_left(9, report)),
        (0, seat_left(5, report)),
        (1, seat_left(2, report)),
    ]
    stats = ServerStats()
    recorder = InputRecorder(tmp_path, stats, LogThrottle(60.0))
    for reporter, packet in relayed:
        recorder.relayed("r", 4, reporter, packet)
    recorder.close_all()
    (path,) = tmp_path.rglob("*.jsonl")
    assert path.read_text().splitlines(keepends=True)[1:] == [
        left_line(0, report),
        left_line(1, report),
    ]

    sent: list[bytes] = []

    async def send(sid: str, packet: bytes) -> bool:
        sent.append(packet)
        return True

    async def scenario() -> None:
        spectators = SpectatorFeed(send, lambda sid: 0, 8, ServerStats(), LogThrottle(60.0))
        spectators.watch("r", "w")
        for reporter, packet in relayed:
            await spectators.relayed("r", 4, reporter, packet)
        # One that joins now gets them in its catch-up.
        spectators.watch("r", "late")
        while spectators._tasks:
            await asyncio.sleep(0)

    asyncio.run(scenario())
    assert sent == [report_packet(0, report), report_packet(1, report)] * 2
