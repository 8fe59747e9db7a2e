"""A page that comes back under the rollback layer (p2p_transport.rollback.resume).

Two players on tests/mesh_sim.py: one page reloads (its sessions stop, the other hears of it
20-200 ms later), and its new page is paired again some seconds on. The player who stayed idles
the absent seat or stalls, answers the new page's ask with the game under way, and both end on
the same records, which replay offline to their checksums.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from p2p_transport import Callbacks, P2PSession
from p2p_transport.errors import UsageError
from p2p_transport.protocol.chunks import MAX_CHUNKS, ChunkAssembler, chunk_payloads
from p2p_transport.protocol.kept_inputs import KeptInputs
from p2p_transport.rollback import RollbackSession, resume
from p2p_transport.rollback.replay import replay
from p2p_transport.rollback.resume import (
    LONG_DROP_MS,
    MAX_KEPT_FOR_RESUME,
    ResumePackage,
    earlier_records,
)
from p2p_transport.wire.codec import DecodeError, decode
from p2p_transport.wire.control_payloads import (
    MAX_CHUNK_DATA,
    RollbackKind,
    encode_state_chunk_payload,
)
from tests.fakes import FakeChannel, FakeClock, FakeScheduler
from tests.mesh_sim import Cut, MeshRun, Reload, RingGame, simulate_mesh

FRAMES = 900
RELOAD_AT = 300


def assert_same_records(
    run: MeshRun, episodes: int, seed: int, *, lossy: bool = False
) -> list[dict[str, Any]]:
    """Both ended: the page that came back holds the other's records (those before the episode
    it resumed in came in the package), each replays offline to its checksum (the idle action
    in every idled frame).
    ``lossy``: a full control window may have refused a control message (a hash, a time sync)."""
    stayed, back = run.players
    assert stayed.rollback.state.value == back.rollback.state.value == "ended"
    records = stayed.rollback.episodes
    assert len(records) == episodes
    assert back.rollback.episodes == records
    for record in records:
        assert record["frames"] == FRAMES
        game = RingGame(2, seed + record["episode"])
        assert replay(game, record["inputs"]).hex() == record["final_checksum"]
        for seat, spans in record.get("idled", {}).items():
            for start, end in spans:
                assert {frame[int(seat)] for frame in record["inputs"][start:end]} == {0}
    for player in run.players:
        stats = player.rollback.stats()
        assert stats["desyncs"] == 0
        assert stats["malformed_control"] == 0
        assert lossy or stats["control_send_failures"] == 0
    return records


def test_a_reload_at_frame_300_idles_the_seat_and_both_end_on_the_same_record() -> None:
    heard: list[tuple[int, str]] = []
    run = simulate_mesh(
        2,
        frames=FRAMES,
        loss=0.1,
        seed=3,
        reloading=[Reload(1, RELOAD_AT, 3000.0)],
        on_peer_absent=lambda player, event: heard.append((player, event)),
    )
    (record,) = assert_same_records(run, 1, 3)
    stayed, back = run.players
    assert heard == [(1, "absent"), (1, "resumed")]
    (absence,) = stayed.rollback.absences
    assert absence["ended"] == "resumed" and absence["episode"] == 0
    # Idle from the frame after its last input that arrived, to where its actions counted again,
    # past every frame the other played meanwhile.
    ((start, end),) = record["idled"]["1"]
    assert RELOAD_AT <= start == absence["frame"] <= RELOAD_AT + 12
    assert end > stayed.frame_at(run.back_at_ms[1])[1]
    # The other played on at full rate while the page was away: no stall from the absence.
    gone_ms = run.left_at_ms[1]
    assert stayed.frames_between(gone_ms + 500, run.back_at_ms[1]) >= 0.95 * (
        (run.back_at_ms[1] - gone_ms - 500) * 60 / 1000
    )
    assert back.rollback.resumed is not None and back.rollback.resumed["resumed"]
    assert back.rollback.resumed["frame"] > start


def test_a_reload_under_the_stall_policy_stalls_then_resumes_from_the_last_real_input() -> None:
    run = simulate_mesh(
        2,
        frames=FRAMES,
        loss=0.1,
        seed=4,
        reloading=[Reload(0, RELOAD_AT, 2500.0)],
        hidden_policy="stall",
    )
    (record,) = assert_same_records_reloaded_first(run, 4)
    assert "idled" not in record
    stayed = run.players[1]
    # It could play a prediction window past the absent seat's last input, no further.
    assert stayed.frames_between(run.left_at_ms[0] + 500, run.back_at_ms[0]) == 0
    assert stayed.rollback.stats()["stall_frames"] > 100


def assert_same_records_reloaded_first(run: MeshRun, seed: int) -> list[dict[str, Any]]:
    """:func:`assert_same_records` with player 0 the page that came back."""
    back, stayed = run.players
    swapped = MeshRun([stayed, back], run.sessions, run.channels, run.clock, run.delays_ms)
    return assert_same_records(swapped, 1, seed)


def test_an_episode_that_ends_while_the_page_is_away_ends_for_it_and_it_joins_the_next() -> None:
    run = simulate_mesh(
        2, frames=FRAMES, episodes=2, loss=0.05, seed=6, reloading=[Reload(1, 850, 4000.0)]
    )
    records = assert_same_records(run, 2, 6)
    assert run.players[1].rollback.resumed["episode"] == 1
    first, second = (record["idled"]["1"] for record in records)
    ((_, end),) = first
    assert end == FRAMES
    ((start, _),) = second
    assert start == 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    loss=st.sampled_from([0.0, 0.1, 0.3]),
    reorder=st.sampled_from([0.0, 0.2]),
    at=st.integers(0, 600),
    back_ms=st.floats(10.0, 6000.0),
    policy=st.sampled_from(["idle", "stall", "pause"]),
    reloading=st.integers(0, 1),
)
@example(seed=0, loss=0.3, reorder=0.2, at=0, back_ms=300.0, policy="idle", reloading=0)
@example(seed=1, loss=0.1, reorder=0.0, at=200, back_ms=10.0, policy="idle", reloading=1)
def test_every_reload_ends_on_the_same_records(
    seed: int, loss: float, reorder: float, at: int, back_ms: float, policy: str, reloading: int
) -> None:
    run = simulate_mesh(
        2,
        frames=FRAMES,
        loss=loss,
        reorder=reorder,
        seed=seed,
        reloading=[Reload(reloading, at, back_ms)],
        hidden_policy=policy,
    )
    players = run.players if reloading == 1 else run.players[::-1]
    ordered = MeshRun(list(players), run.sessions, run.channels, run.clock, run.delays_ms)
    assert_same_records(ordered, 1, seed, lossy=True)


def test_a_page_that_never_comes_back_ends_the_game_past_the_limit() -> None:
    heard: list[tuple[int, str]] = []
    run = simulate_mesh(
        2,
        frames=FRAMES,
        loss=0.0,
        seed=1,
        reloading=[Reload(1, RELOAD_AT, 1e9)],
        return_limit_ms=5000.0,
        on_peer_absent=lambda player, event: heard.append((player, event)),
    )
    stayed = run.players[0]
    rollback = stayed.rollback
    assert rollback.state.value == "closed"
    assert rollback.end_reason is not None
    assert rollback.end_reason["reason"] == "player 1 did not come back within 5 s"
    assert heard == [(1, "absent"), (1, "gone")]
    (absence,) = rollback.absences
    assert absence["ended"] == "gone"
    assert 5000.0 < absence["to_ms"] - absence["from_ms"] < 5100.0
    # What it confirmed is kept: the record of the episode under way, the seat idle at the end.
    under_way = rollback.telemetry()["episode_under_way"]
    assert under_way["frames"] > RELOAD_AT and under_way["idled"] == {
        "1": [[absence["frame"], under_way["frames"]]]
    }


# --- long drops ------------------------------------------------------------------------------

CUT_FROM_MS, CUT_TO_MS = 5000.0, 20_000.0


def test_a_long_drop_under_idle_the_lower_index_plays_on_and_the_other_takes_its_game() -> None:
    heard: list[tuple[int, str]] = []
    run = simulate_mesh(
        2,
        frames=1800,
        loss=0.05,
        seed=3,
        cutting=[Cut(CUT_FROM_MS, CUT_TO_MS)],
        on_peer_absent=lambda player, event: heard.append((player, event)),
    )
    lower, higher = run.players
    records = lower.rollback.episodes
    assert higher.rollback.episodes == records and len(records) == 1
    (record,) = records
    assert record["frames"] == 1800
    assert replay(RingGame(2, 3), record["inputs"]).hex() == record["final_checksum"]
    # The lower index played on once the drop was long, at full rate; the other stalled.
    judged_ms = CUT_FROM_MS + LONG_DROP_MS + 500
    on_time = (CUT_TO_MS - judged_ms) * 60 / 1000
    assert lower.frames_between(judged_ms, CUT_TO_MS) >= 0.95 * on_time
    assert higher.frames_between(judged_ms, CUT_TO_MS) == 0
    # The higher index's seat idled from its last input before the cut to past the cut's end.
    ((first, end),) = record["idled"]["1"]
    assert first < CUT_FROM_MS * 60 / 1000 + 12 and end > lower.frame_at(CUT_TO_MS)[1]
    assert heard == [(1, "absent"), (1, "resumed")]
    resumed = higher.rollback.resumed
    assert resumed is not None and resumed["resumed"] and resumed["asked_ms"] is None
    for player in run.players:
        assert player.rollback.stats()["desyncs"] == 0


@pytest.mark.parametrize("policy", ["stall", "pause"])
def test_a_long_drop_under_stall_or_pause_stalls_both_and_goes_on(policy: str) -> None:
    run = simulate_mesh(
        2,
        frames=1800,
        loss=0.05,
        seed=3,
        cutting=[Cut(CUT_FROM_MS, CUT_TO_MS)],
        hidden_policy=policy,
    )
    first, second = run.players
    assert first.rollback.episodes == second.rollback.episodes
    (record,) = first.rollback.episodes
    assert record["frames"] == 1800 and "idled" not in record
    for player in run.players:
        assert player.frames_between(CUT_FROM_MS + 1000, CUT_TO_MS) == 0
        assert player.rollback.absences == [] and player.rollback.resumed is None


@pytest.mark.parametrize("policy", ["idle", "stall"])
def test_silent_past_the_limit_both_sides_end_with_the_reason(policy: str) -> None:
    run = simulate_mesh(
        2,
        frames=1800,
        loss=0.0,
        seed=2,
        cutting=[Cut(CUT_FROM_MS, 40_000.0)],
        hidden_policy=policy,
        return_limit_ms=8000.0,
    )
    reasons = [player.rollback.end_reason for player in run.players]
    assert all(player.rollback.state.value == "closed" for player in run.players)
    assert reasons[0] is not None and reasons[1] is not None
    if policy == "idle":
        # The lower index waited for the seat it idled; the other counted the silence.
        assert reasons[0]["reason"] == "player 1 did not come back within 8 s"
    else:
        assert reasons[0]["reason"] == "player 1 was silent for more than 8 s"
    assert reasons[1]["reason"] == "player 0 was silent for more than 8 s"


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    loss=st.sampled_from([0.0, 0.1, 0.3]),
    reorder=st.sampled_from([0.0, 0.2]),
    # From the first frames on: a cut while the two still negotiate spends no probes (the
    # negotiation's docstring), so neither takes the other for a deployed version-1 peer.
    from_ms=st.floats(1.0, 10_000.0),
    length_ms=st.floats(500.0, 12_000.0),
)
# Every first input both ways lost: the two stalled for good before the unheard resend.
@example(seed=0, loss=0.0, reorder=0.0, from_ms=1.0, length_ms=500.0)
# A cut 50 ms in, before the two settled: eight probes spent on it took each for version 1.
@example(seed=0, loss=0.0, reorder=0.2, from_ms=50.0, length_ms=9000.0)
# The same, shorter: both stalled with lost inputs, and probes waited for the peer's inputs
# (which it no longer sent) where its control messages said it was there.
@example(seed=0, loss=0.0, reorder=0.2, from_ms=50.0, length_ms=3000.0)
def test_every_long_drop_ends_on_the_same_records(
    seed: int, loss: float, reorder: float, from_ms: float, length_ms: float
) -> None:
    run = simulate_mesh(
        2,
        frames=FRAMES,
        loss=loss,
        reorder=reorder,
        seed=seed,
        cutting=[Cut(from_ms, from_ms + length_ms)],
    )
    assert_same_records(run, 1, seed, lossy=True)


def resuming_page(**options: Any) -> tuple[RollbackSession, P2PSession, FakeChannel]:
    """Player 1's new page, over a session whose channel records what it sends."""
    clock = FakeClock(0.0)
    channel = FakeChannel()
    session = P2PSession(
        1,
        0,
        Callbacks(on_input=lambda frame, action: None),
        clock=clock,
        scheduler=FakeScheduler(clock),
        channel=channel,
    )
    session.edge.on_open()
    return RollbackSession(RingGame(2), session, resume=True, **options), session, channel


def sent_controls(channel: FakeChannel) -> list[tuple[int, bytes]]:
    messages = [decode(data) for data in channel.sent]
    return [(int(m.kind), bytes(m.payload)) for m in messages if hasattr(m, "kind")]


def test_a_page_that_asks_where_there_is_nothing_to_resume_starts_the_first_episode() -> None:
    rollback, session, channel = resuming_page()
    assert rollback.state.value == "resuming"
    assert (RollbackKind.RESUME_ASK, b"") in sent_controls(channel)
    assert not rollback.advance_frame(1)
    session.parts.delivery.on_input(0, 3)  # the other page's first input came first
    session.parts.delivery.on_control(RollbackKind.RESUME, b"")
    assert rollback.state.value == "running"
    assert rollback.resumed is not None and rollback.resumed["resumed"] is False
    assert rollback.advance_frame(1)
    assert rollback.stats()["peers"]["0"]["confirmed_frame"] == 0


def test_a_page_that_came_back_keeps_a_bounded_number_of_inputs_and_counts_the_rest() -> None:
    rollback, session, _ = resuming_page()
    heard: list[tuple[int, str]] = []
    rollback.on_peer_absent = lambda player, event: heard.append((player, event))
    assert rollback.on_peer_absent is not None
    for frame in reversed(range(MAX_KEPT_FOR_RESUME + 1)):
        session.parts.delivery.on_input(frame, 2)
    assert rollback.stats()["stale_inputs"] == 1  # frame 0, the last to come
    session.parts.delivery.on_control(RollbackKind.RESUME, b"")
    assert rollback.stats()["peers"]["0"]["confirmed_frame"] == -1  # frame 0 is missing
    session.parts.delivery.on_input(0, 2)  # (a test's resend: a real sender never resends)
    assert rollback.stats()["peers"]["0"]["confirmed_frame"] == MAX_KEPT_FOR_RESUME
    assert heard == [] and rollback.absences == []


def test_kept_inputs_are_bounded_and_come_back_in_frame_order() -> None:
    kept = KeptInputs(MAX_KEPT_FOR_RESUME)
    assert not kept and kept.newest == -1
    for frame in reversed(range(MAX_KEPT_FOR_RESUME)):
        assert kept.keep(frame, frame % 7)
    assert not kept.keep(MAX_KEPT_FOR_RESUME, 1)
    assert not kept.keep(0, 1)  # full: not even a frame it holds is replaced
    assert kept and kept.newest == MAX_KEPT_FOR_RESUME - 1
    taken = kept.take()
    assert taken == [(frame, frame % 7) for frame in range(MAX_KEPT_FOR_RESUME)]
    assert not kept and kept.take() == []
    assert kept.keep(5, 1) and kept.keep(5, 2) and list(kept) == [(5, 2)]
    kept.clear()
    assert list(kept) == []


# --- the package and its chunks -----------------------------------------------------------------


def test_the_resume_package_exact_bytes() -> None:
    package = ResumePackage(
        episode=1,
        next_frame=3,
        base=200,
        input_delay=2,
        actions=(b"\x01\x02\x03\x04", b"\x00\x00\x05"),
        state=b"S!",
        params=None,
        idled={1: [(2, None)]},
    )
    extra = b'{"params":null,"idled":{"1":[[2,null]]},"ended":false,"earlier":[]}'
    assert package.encode() == (
        bytes.fromhex("0000000100000003000000c80202")
        + bytes.fromhex("0000000401020304")
        + bytes.fromhex("00000003000005")
        + len(extra).to_bytes(4, "big")
        + extra
        + b"S!"
    )
    assert ResumePackage.decode(package.encode()) == package


@given(
    episode=st.integers(0, 2**32 - 1),
    actions=st.lists(st.binary(min_size=5, max_size=300), min_size=2, max_size=8),
    state=st.binary(max_size=3000),
    params=st.none() | st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
def test_a_package_decodes_to_itself_and_travels_in_chunks(
    episode: int, actions: list[bytes], state: bytes, params: dict[str, int] | None
) -> None:
    package = ResumePackage(episode, 5, 7, 3, tuple(actions), state, params, {0: [(1, 4)]})
    data = package.encode()
    assembler = ChunkAssembler()
    payloads = chunk_payloads(5, episode % 2**32, data)
    assert len(payloads) == max(1, -(-len(data) // MAX_CHUNK_DATA))
    *head, last = payloads
    assert all(assembler.add(payload) is None for payload in head)
    whole = assembler.add(last)
    assert whole is not None and ResumePackage.decode(whole[2]) == package


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes.fromhex("00000000 00000000 00000000 02 01"),  # one player
        bytes.fromhex("00000000 00000009 00000000 02 02 00000002 0101"),  # ends before frame 9
        bytes.fromhex("00000000 00000000 00000000 02 02 00000000 00000000 00000002") + b"{}",
        bytes.fromhex("00000000 00000000 00000000 02 02 00000000 00000000 00000003") + b"[1]",
    ],
)
def test_a_malformed_package_is_a_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        ResumePackage.decode(data)


@pytest.mark.parametrize(
    "earlier",
    [[{"episode": 2}], [{"episode": 1}, {"episode": 0}], [{"episode": 0}, {"episode": 0}], [3]],
)
def test_earlier_records_that_are_not_earlier_episodes_in_order_are_refused(
    earlier: list[Any],
) -> None:
    package = ResumePackage(2, 0, 0, 2, (b"", b""), b"", earlier=tuple(earlier))
    with pytest.raises(DecodeError, match="earlier episodes"):
        ResumePackage.decode(package.encode())


def test_a_package_carries_the_newest_earlier_records_that_fit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    records = [{"episode": n, "inputs": [[n, n]] * 10} for n in range(5)]
    size = len(json.dumps(records[0], separators=(",", ":"))) + 1
    monkeypatch.setattr(resume, "MAX_EARLIER_BYTES", 2 * size)
    assert earlier_records([*records, {"episode": 5}], 5) == (records[3], records[4])
    assert earlier_records(records, 4) == (records[2], records[3])
    package = ResumePackage(5, 0, 0, 2, (b"", b""), b"", earlier=tuple(records[3:]))
    assert ResumePackage.decode(package.encode()).earlier == tuple(records[3:])


def test_chunks_that_do_not_match_their_digest_or_are_too_many_are_refused() -> None:
    payload = encode_state_chunk_payload(0, 0, 0, 1, b"\x00" * 16, b"not that")
    with pytest.raises(DecodeError, match="digest"):
        ChunkAssembler().add(payload)
    too_many = encode_state_chunk_payload(0, 0, 0, MAX_CHUNKS + 1, b"\x00" * 16, b"")
    with pytest.raises(DecodeError, match="chunks"):
        ChunkAssembler().add(too_many)


def test_a_malformed_resume_is_counted_and_the_page_keeps_waiting() -> None:
    rollback, session, _ = resuming_page()
    junk = encode_state_chunk_payload(0, 0, 0, 1, b"\x00" * 16, b"junk")
    session.parts.delivery.on_control(RollbackKind.RESUME, junk)
    assert rollback.stats()["malformed_control"] == 1
    assert rollback.state.value == "resuming"


def test_usage_errors() -> None:
    rollback, session, _ = resuming_page()
    assert not rollback.awaits(0)
    with pytest.raises(UsageError, match="does not wait for player 0"):
        rollback.replace_session(0, session)

    class NoState:
        idle_action = 0

        def save_state(self) -> object:
            return None

        def load_state(self, state: object) -> None:
            pass

        def advance(self, inputs: tuple[int, ...]) -> None:
            pass

        def checksum(self) -> bytes:
            return b""

    with pytest.raises(UsageError, match="encode_state"):
        RollbackSession(NoState(), session, resume=True)
    with pytest.raises(UsageError, match="return_limit_ms"):
        RollbackSession(RingGame(2), session, return_limit_ms=-1.0)
