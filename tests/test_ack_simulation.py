"""Fixed redundancy 3, fixed 10 and acknowledged redundancy over the same seeded lossy links.

Each run is checked exactly against the link's record of which input packets it dropped (see
tests/link_sim.py). Every step sends its input packet(s) at the frame's time and each survivor
arrives 20 ms later, so with k_f the number of steps from frame f's own step to the first step
whose packet got through:

- fixed redundancy r delivers frame f if and only if k_f < r (the packets of steps f..f+r-1 carry
  it), and then exactly k_f frames late;
- acknowledged redundancy carries f in every packet until the peer has it, so it delivers every
  frame, exactly k_f frames late; frames after the last surviving packet of the run (none at these
  loss levels but the last few) arrive once the link recovers, through the resend timer.

The one exception is the first few frames, sent as version 1 while the sessions negotiate: they
still arrive (they stay pending and go out again once acked packets flow), possibly later than k_f.
The table of these figures is printed by benchmarks/bench_loss.py.
"""

from __future__ import annotations

import pytest

from p2p_transport import SessionConfig
from p2p_transport.protocol.acked_sender import PENDING_LIMIT
from p2p_transport.wire.messages import MessageType
from tests.link_sim import FRAME_MS, IDLE_MS, Direction, SimRun, link, simulate

FRAMES = 4000
LINKS = [(loss, 1) for loss in (0.0, 0.1, 0.2, 0.3)] + [(loss, 5) for loss in (0.1, 0.2, 0.3)]
FIXED = {r: SessionConfig(redundancy=r, acked_inputs=False, relay_inputs=False) for r in (3, 10)}
ACKED = SessionConfig(redundancy=3, relay_inputs=False)


def link_id(value: tuple[float, int]) -> str:
    loss, burst = value
    return f"{loss:.0%}" + (f"-burst{burst}" if burst > 1 else "")


def steps(direction: Direction, frames: int) -> list[list[MessageType]]:
    """For each frame's step, the kinds of input packet that step sent."""
    by_step: list[list[MessageType]] = [[] for _ in range(frames)]
    for packet in direction.sent:
        step = round(packet.at_ms / FRAME_MS)
        if step < frames and abs(packet.at_ms - step * FRAME_MS) < 1e-6:
            by_step[step].append(packet.kind)
    return by_step


def frames_until_through(direction: Direction, frames: int) -> list[int | None]:
    """k_f for each frame: steps from f to the first step with a surviving packet (None: none)."""
    through = [False] * frames
    for packet in direction.sent:
        step = round(packet.at_ms / FRAME_MS)
        if step < frames and abs(packet.at_ms - step * FRAME_MS) < 1e-6 and not packet.dropped:
            through[step] = True
    result: list[int | None] = [None] * frames
    next_through: int | None = None
    for frame in reversed(range(frames)):
        if through[frame]:
            next_through = frame
        result[frame] = None if next_through is None else next_through - frame
    return result


def run(config: SessionConfig, loss: float, burst: int, seed: int) -> SimRun:
    result = simulate(config, link(loss, burst), frames=FRAMES, seed=seed)
    for direction in result.directions.values():
        assert direction.errors == []  # nothing twice, nothing with a wrong action
    return result


@pytest.mark.parametrize("redundancy", [3, 10])
@pytest.mark.parametrize("loss_burst", LINKS, ids=link_id)
def test_fixed_redundancy_delivers_exactly_what_its_packets_carried(
    redundancy: int, loss_burst: tuple[float, int]
) -> None:
    loss, burst = loss_burst
    result = run(FIXED[redundancy], loss, burst, seed=int(loss * 100) + burst + redundancy)
    for direction in result.directions.values():
        assert {kind for kinds in steps(direction, FRAMES) for kind in kinds} == {MessageType.INPUT}
        for frame, k in enumerate(frames_until_through(direction, FRAMES)):
            if k is not None and k < redundancy:
                assert direction.extra_delay_frames(frame) == pytest.approx(k, abs=1e-6)
            else:
                assert frame not in direction.delivered_at


@pytest.mark.parametrize("loss_burst", LINKS, ids=link_id)
def test_acked_redundancy_loses_nothing_and_delays_only_by_the_losses(
    loss_burst: tuple[float, int],
) -> None:
    loss, burst = loss_burst
    result = run(ACKED, loss, burst, seed=int(loss * 100) + burst + 20)
    for side, direction in result.directions.items():
        session = result.sessions[side]
        stats = session.stats()
        # Every input arrived, exactly once (errors above), once the link recovered.
        assert sorted(direction.delivered_at) == list(range(FRAMES))
        assert stats["acked_inputs_in_use"]
        assert stats["acked_inputs_abandoned"] == stats["acked_stalls"] == 0
        # After a short version-1 start (well inside the pending bound, so nothing from it could
        # be given up), each step sends one acked packet.
        kinds = steps(direction, FRAMES)
        first_acked = next(f for f, k in enumerate(kinds) if k == [MessageType.ACKED_INPUT])
        assert first_acked < PENDING_LIMIT // 2
        assert all(k == [MessageType.ACKED_INPUT] for k in kinds[first_acked:])
        assert all(MessageType.INPUT in k for k in kinds[:first_acked])
        # From then on, each frame is exactly as late as the losses after it made it.
        for frame, k in enumerate(frames_until_through(direction, FRAMES)):
            if frame >= first_acked and k is not None:
                assert direction.extra_delay_frames(frame) == pytest.approx(k, abs=1e-6)
        # Paused with everything acknowledged, the session goes quiet: nothing pending, and no
        # input packet in the second half of the pause.
        assert stats["acked_pending"] == 0
        assert direction.sent[-1].at_ms < FRAMES * FRAME_MS + IDLE_MS / 2
        session.close()
    assert all(not session.stats()["resend_timer_running"] for session in result.sessions.values())


def test_acked_packets_stay_small_on_a_clean_link() -> None:
    # Acknowledged inputs drop out: at a 40 ms round trip a packet carries the last few inputs,
    # about fixed redundancy 4, not the 64 it may hold.
    result = run(ACKED, 0.0, 1, seed=5)
    for direction in result.directions.values():
        sizes = [p.size for p in direction.sent if p.kind is MessageType.ACKED_INPUT]
        assert max(sizes) <= 12 + 5 * 5
        assert sum(sizes) / len(sizes) <= 12 + 5 * 4
