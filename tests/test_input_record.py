"""The server's input record (``--record-dir``): every input the relay carries, once, in a file
per room that is flushed while the room is open, bounded, and read back into episodes that
replay to the same checksum as the inputs the players sent."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from p2p_demo.pong import PongGame
from p2p_server.input_recorder import DEDUP_WINDOW_FRAMES, InputRecorder, _Frames
from p2p_server.limits import LogThrottle
from p2p_server.server import ServerOptions, ServerThread, main
from p2p_server.stats import ServerStats
from p2p_server.telemetry_store import room_dir_name
from p2p_transport.rollback import read_input_record, replay, replay_episode
from p2p_transport.rollback.input_record import (
    SeatReport,
    end_line,
    header_line,
    input_line,
    left_line,
)
from p2p_transport.rollback.session import MAX_INPUT_DELAY
from p2p_transport.wire.codec import (
    encode_acked_input_packet,
    encode_control,
    encode_input_packet,
    encode_input_response,
    encode_keepalive,
)
from p2p_transport.wire.control_payloads import encode_episode_end_payload
from p2p_transport.wire.messages import ControlKind
from tests.test_server import Peer, wait_until

pytestmark = pytest.mark.timeout(60)

SEED = 7
#: Episode 0's frames; episode 1 starts where the rollback layer starts it.
EPISODE_0_FRAMES = 120
EPISODE_1_BASE = EPISODE_0_FRAMES + MAX_INPUT_DELAY
#: The frames of episode 1 each player sent before both tabs died: player 1 is behind.
EPISODE_1_SENT = (80, 75)
#: The server flushes every second; this leaves a loaded machine's late tick room.
FLUSH_DEADLINE_S = 3.0

Start = Callable[..., ServerThread]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """``start(**options)``: a server recording under ``tmp_path / "records"``."""
    servers: list[ServerThread] = []

    def make(**options: Any) -> ServerThread:
        server = ServerThread(options=ServerOptions(record_dir=tmp_path / "records", **options))
        servers.append(server.start())
        return server

    yield make
    for server in servers:
        server.stop()


def pair(server: ServerThread, peers: list[Peer], room: str) -> tuple[Peer, Peer]:
    a, b = Peer(server.url, "a"), Peer(server.url, "b")
    peers += [a, b]
    assert a.join(room)["player_index"] == 0
    assert b.join(room)["player_index"] == 1
    a.expect("paired")
    b.expect("paired")
    return a, b


def record_files(tmp_path: Path, room: str) -> list[Path]:
    return sorted((tmp_path / "records" / room).glob("*.jsonl"))


def refusals(server: ServerThread) -> dict[str, int]:
    return dict(server.stats.refusals)


def episode_end(sequence: int, episode: int, last_frame: int) -> bytes:
    payload = encode_episode_end_payload(last_frame, episode)
    return encode_control(sequence, ControlKind.EPISODE_END, payload)


# --- the format -----------------------------------------------------------------------------


def test_the_lines_of_a_record() -> None:
    assert header_line("study/1 é", 2, 1712345678901) == (
        '{"format":"p2p_transport.input_record","version":2,"room":"study/1 \\u00e9",'
        '"players":2,"started_unix_ms":1712345678901}\n'
    )
    assert input_line(1234, 1, 3) == "[1234,1,3]\n"
    assert end_line(0, 2, 119) == '{"end":2,"player":0,"frame":119}\n'
    assert left_line(2, SeatReport(3, 1, 40, bytes([0, 4, 1]))) == (
        '{"left":3,"by":2,"episode":1,"frame":40,"actions":[0,4,1]}\n'
    )


def test_the_server_writes_each_new_input_and_episode_end_once_in_these_lines(
    start: Start, peers: list[Peer], tmp_path: Path
) -> None:
    server = start()
    a, _ = pair(server, peers, "r")
    a.emit("relay", encode_input_packet(0, 2, [(0, 1), (1, 2), (2, 0)]))
    a.emit("relay", encode_input_packet(0, 3, [(1, 2), (2, 0), (3, 3)]))  # 1 and 2 again
    a.emit("relay", encode_keepalive())
    a.emit("relay", episode_end(0, 0, 3))
    a.emit("relay", episode_end(0, 0, 3))  # resent until acknowledged
    a.emit("relay", encode_acked_input_packet(0, 34, None, [(3, 3), (34, 1)]))
    wait_until(lambda: server.stats.inputs_recorded == 5)
    for peer in peers:
        peer.close()
    wait_until(lambda: server.stats.rooms_open == 0)
    (path,) = record_files(tmp_path, "r")
    header, *lines = path.read_text().splitlines(keepends=True)
    started = read_input_record(path)["started_unix_ms"]
    assert header == header_line("r", 2, started)
    assert abs(started / 1000 - time.time()) < 60
    assert lines == [
        "[0,0,1]\n",
        "[1,0,2]\n",
        "[2,0,0]\n",
        "[3,0,3]\n",
        '{"end":0,"player":0,"frame":3}\n',
        "[34,0,1]\n",
    ]


# --- a game through the relay ---------------------------------------------------------------


def game_inputs(frames: int, seed: int) -> list[list[int]]:
    """Pong actions (bit sets of UP and DOWN) for both players, seeded."""
    rng = random.Random(seed)
    return [[rng.randrange(4), rng.randrange(4)] for _ in range(frames)]


def send_inputs(peer: Peer, player: int, actions: dict[int, int]) -> None:
    """Send ``actions`` (wire frame -> action) as a 60 Hz sender would: player 0 as version-1
    packets with the last 3 inputs, player 1 as acked packets with the last 8; some packets lost
    (their inputs ride in the next ones), some sent twice, and for player 0 a burst longer than
    its redundancy, whose inputs come later in an input response."""
    frames = sorted(actions)
    burst = set(frames[40:47])
    for i, frame in enumerate(frames):
        if i % 5 == 2 or (player == 0 and frame in burst):
            continue  # lost on the way
        if player == 0:
            window = [(f, actions[f]) for f in frames[max(0, i - 2) : i + 1]]
            packet = encode_input_packet(0, frame, window)
        else:
            window = [(f, actions[f]) for f in frames[max(0, i - 7) : i + 1]]
            packet = encode_acked_input_packet(1, frame, None, window)
        peer.emit("relay", packet)
        if i % 7 == 0:
            peer.emit("relay", packet)
        if player == 0 and i == 60:
            peer.emit("relay", encode_input_response(0, [(f, actions[f]) for f in frames[38:48]]))


def test_a_relayed_game_is_recorded_flushed_while_open_and_replays_to_the_same_checksum(
    start: Start, peers: list[Peer], tmp_path: Path
) -> None:
    server = start()
    a, b = pair(server, peers, "study 1")
    episode_0 = game_inputs(EPISODE_0_FRAMES, SEED)
    episode_1 = game_inputs(max(EPISODE_1_SENT), SEED + 1)
    for peer, player in ((a, 0), (b, 1)):
        actions = {f: inputs[player] for f, inputs in enumerate(episode_0)}
        # The frames sent past the end (the input delay), before the next episode's first.
        actions |= {f: 0 for f in range(EPISODE_0_FRAMES, EPISODE_1_BASE)}
        actions |= {
            EPISODE_1_BASE + f: inputs[player]
            for f, inputs in enumerate(episode_1[: EPISODE_1_SENT[player]])
        }
        send_inputs(peer, player, actions)
        # The end goes out once episode 0's last frame is confirmed, and again until acked.
        peer.emit("relay", episode_end(0, 0, EPISODE_0_FRAMES - 1))
        peer.emit("relay", episode_end(0, 0, EPISODE_0_FRAMES - 1))
    sent = 2 * EPISODE_1_BASE + sum(EPISODE_1_SENT)
    wait_until(lambda: server.stats.inputs_recorded == sent)

    # While the room is still open, the file catches up within the flush interval.
    (path,) = record_files(tmp_path, "study%201")
    deadline = time.monotonic() + FLUSH_DEADLINE_S
    while path.read_text().count("\n") < 1 + sent + 2:
        assert time.monotonic() < deadline, "the record was not flushed while the room is open"
        time.sleep(0.02)
    record = read_input_record(path)
    # Every tab dies: what was recorded stays, and the closed file reads the same.
    for peer in peers:
        peer.close()
    wait_until(lambda: server.stats.rooms_open == 0)
    assert read_input_record(path) == record

    assert (record["room"], record["players"]) == ("study 1", 2)
    first, second = record["episodes"]
    assert first == {
        "episode": 0,
        "first_frame": 0,
        "frames": EPISODE_0_FRAMES,
        "inputs": episode_0,
        "ended": True,
    }
    confirmed = min(EPISODE_1_SENT)  # player 1's last input is the last confirmed frame
    assert second == {
        "episode": 1,
        "first_frame": EPISODE_1_BASE,
        "frames": confirmed,
        "inputs": episode_1[:confirmed],
        "ended": False,
    }
    for got, sent_inputs in ((first, episode_0), (second, episode_1[:confirmed])):
        direct = replay(PongGame(seed=SEED), sent_inputs)
        assert replay_episode(lambda: PongGame(seed=SEED), got) == direct
    assert replay(PongGame(seed=SEED), episode_0) != replay(PongGame(seed=SEED), episode_0[:-1])
    assert refusals(server) == {}


# --- bounds and bad packets -----------------------------------------------------------------


def test_past_its_bound_a_room_refuses_new_inputs_and_counts_them(
    start: Start, peers: list[Peer], tmp_path: Path
) -> None:
    # Room for the header and ten one-digit frames' lines, "[f,0,1]\n".
    bound = len(header_line("r", 2, int(time.time() * 1000))) + 10 * len(input_line(0, 0, 1))
    server = start(record_max_bytes=bound)
    a, b = pair(server, peers, "r")
    for frame in range(30):
        a.emit("relay", encode_input_packet(0, frame, [(frame, 1)]))
    for _ in range(30):
        b.expect("relay")  # relayed all the same
    assert server.stats.inputs_recorded == 10
    assert refusals(server) == {"record_full": 20}
    (path,) = record_files(tmp_path, "r")
    wait_until(lambda: path.stat().st_size == bound, timeout=FLUSH_DEADLINE_S)
    assert read_input_record(path)["episodes"][0]["frames"] == 0  # player 1 sent nothing


def test_a_packet_the_recorder_cannot_read_is_counted_and_relayed(
    start: Start, peers: list[Peer], tmp_path: Path
) -> None:
    server = start()
    a, b = pair(server, peers, "r")
    malformed = [b"\x01\x00", b"\x20" + b"\xff" * 20, b"\x13\x00\x00\x00\x05", b"\x22\x00"]
    ignored = [encode_keepalive(), b"\xfe not a message the recorder reads"]
    for packet in malformed + ignored:
        a.emit("relay", packet)
        assert b.expect("relay") == packet
    # A control message whose episode end payload is short.
    a.emit("relay", encode_control(0, ControlKind.EPISODE_END, b"\x00"))
    b.expect("relay")
    a.emit("relay", encode_input_packet(0, 0, [(0, 2)]))
    assert b.expect("relay")
    assert refusals(server) == {"record_malformed": len(malformed) + 1}
    assert server.stats.inputs_recorded == 1
    assert server.stats.errors == 0


def test_a_record_that_cannot_be_written_is_counted_once_and_the_relay_goes_on(
    tmp_path: Path, peers: list[Peer]
) -> None:
    (tmp_path / "records").write_text("a file where the directory should be")
    with ServerThread(options=ServerOptions(record_dir=tmp_path / "records")) as server:
        a, b = pair(server, peers, "r")
        for frame in range(3):
            a.emit("relay", encode_input_packet(0, frame, [(frame, 1)]))
            b.expect("relay")
        assert refusals(server) == {"record_failed": 1}
        assert server.stats.inputs_recorded == 0


def test_a_record_dir_that_cannot_be_made_stops_the_server_with_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit) as stopped:
        main(["--record-dir", str(tmp_path / "file")])
    assert stopped.value.code == 2
    assert f"--record-dir {tmp_path / 'file'}: File exists" in capsys.readouterr().err


def test_what_the_recorder_keeps_of_a_players_frames_stays_bounded() -> None:
    frames = _Frames()
    newest = 3 * DEDUP_WINDOW_FRAMES
    for frame in range(newest + 1):
        if frame not in (5, newest - 10):  # two gaps: one long past, one recent
            frames.add(frame)
    assert len(frames.recent) <= 2 * DEDUP_WINDOW_FRAMES
    assert not frames.is_new(5)  # older than any sender repeats: taken as recorded
    assert frames.is_new(newest - 10)  # a recent gap is still filled
    assert not frames.is_new(newest - 11)
    assert frames.is_new(newest + 1)


# --- the reader -----------------------------------------------------------------------------


def write_record(path: Path, *lines: str) -> Path:
    path.write_text(header_line("r", 2, 0) + "".join(lines))
    return path


def test_the_reader_stops_at_the_first_frame_without_every_input_and_skips_a_torn_line(
    tmp_path: Path,
) -> None:
    path = write_record(
        tmp_path / "r.jsonl",
        *(input_line(f, p, f % 4) for f in range(5) for p in (0, 1) if (f, p) != (3, 1)),
        "[5,0,",  # the process stopped while writing it
    )
    (episode,) = read_input_record(path)["episodes"]
    assert episode["inputs"] == [[0, 0], [1, 1], [2, 2]]
    assert episode["ended"] is False


def test_the_reader_needs_both_players_ends_to_find_the_next_episode(tmp_path: Path) -> None:
    both = [input_line(f, p, 1) for f in range(2 + MAX_INPUT_DELAY + 2) for p in (0, 1)]
    path = write_record(tmp_path / "r.jsonl", *both, end_line(0, 0, 1))
    (episode,) = read_input_record(path)["episodes"]
    assert (episode["frames"], episode["ended"]) == (2, False)
    write_record(path, *both, end_line(0, 0, 1), end_line(1, 0, 1))
    first, second = read_input_record(path)["episodes"]
    assert (first["frames"], first["ended"]) == (2, True)
    assert (second["first_frame"], second["frames"]) == (2 + MAX_INPUT_DELAY, 2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not an input record"),
        ('{"format":"p2p_transport.input_record","version":3,"players":2}\n', "version 3"),
        (header_line("r", 2, 0) + "[0,2,1]\n", ":2: not an input record line"),
        (header_line("r", 2, 0) + '{"player":0}\n', ":2: not an input record line"),
    ],
)
def test_the_reader_refuses_what_is_not_a_record(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_input_record(path)


def test_without_a_record_dir_nothing_is_recorded() -> None:
    with ServerThread() as server:
        assert server.relay.records is None


@pytest.mark.parametrize(
    ("room", "directory"), [("..", "%2E%2E"), (".", "%2E"), ("a/..", "a%2F..")]
)
def test_a_room_named_like_a_directory_stays_inside_the_record_dir(
    tmp_path: Path, room: str, directory: str
) -> None:
    assert room_dir_name(room) == directory
    records = tmp_path / "records"
    recorder = InputRecorder(records, ServerStats(), LogThrottle(60.0))
    recorder.relayed(room, 2, 0, encode_input_packet(0, 0, ((0, 1),)))
    recorder.close_all()
    [path] = (tmp_path).rglob("*.jsonl")
    assert path.parent == records / directory
