"""A seeded simulation of two sessions over a lossy link.

Each session sends one input per frame with redundancy 3 (each packet carries its frame and the two
before it) over a DataChannel that drops every packet independently with probability p. Frame f
(with f <= N - 3) rides in exactly three packets, f, f + 1 and f + 2, so it is lost only if all
three are: over P2P alone it arrives with probability

    q = 1 - p^3.

Tolerance. Let X_f be 1 if frame f arrived and S = sum of X_f over the n = N - 2 frames that ride in
three packets (frames N - 2 and N - 1 ride in fewer and are left out). E[S] = n q exactly. X_f and
X_g share a packet only when |f - g| <= 2, so they are independent beyond that (the sequence is
2-dependent) and

    Var(S) = sum over |f - g| <= 2 of Cov(X_f, X_g)
          <= sum over |f - g| <= 2 of sqrt(Var X_f Var X_g)        (Cauchy-Schwarz)
          <= 5 n q (1 - q)                                          (at most 5 such g per f).

(Exactly, Var(S) ~ n [(p^3 - p^6) + 2 (p^4 - p^6) + 2 (p^5 - p^6)], about a third of the bound at
p = 0.3; the conservative bound keeps the derivation short.) S is a sum of many weakly dependent
bounded terms, so it is close to normal; a 5-sigma band around n q, using the bound for sigma,
fails by chance with probability below 1e-6 per check. As a fraction of n:

    |S / n - q| <= 5 sqrt(5 q (1 - q) / n).

At p = 0.3 that is 5 sqrt(5 * 0.973 * 0.027 / 9998) = 0.018; at p = 0 it is 0: every input
must arrive. The run is seeded, so it is also reproducible; besides the statistics, every run is
checked exactly against the link's own record of which packets it dropped.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass

import pytest

from p2p_transport import P2PSession, SessionConfig
from p2p_transport.timing import FRAME_MS
from p2p_transport.wire.codec import decode
from p2p_transport.wire.messages import InputPacket
from tests.fakes import FakeChannel, FakeClock, FakeLink, FakeScheduler

N_FRAMES = 10_000
REDUNDANCY = 3
LOSS_LEVELS = (0.0, 0.1, 0.2, 0.3)


def action_for(player: int, frame: int) -> int:
    return (frame * 31 + player * 17) % 256


@dataclass
class Run:
    link: FakeLink
    sessions: dict[str, P2PSession]
    delivered: dict[str, list[tuple[int, int]]]  # what each side's game received
    seconds: float


def simulate(
    p2p_loss: float,
    *,
    relay_inputs: bool,
    relay_loss: float = 0.0,
    relay_delay: int = 0,
    seed: int,
) -> Run:
    clock = FakeClock(0.0)
    scheduler = FakeScheduler(clock)
    link = FakeLink(p2p_loss=p2p_loss, relay_loss=relay_loss, relay_delay=relay_delay, seed=seed)
    # Fixed redundancy, as version-1 peers send: acked inputs (tests/test_ack_simulation.py)
    # would otherwise be negotiated between these two sessions.
    config = SessionConfig(redundancy=REDUNDANCY, relay_inputs=relay_inputs, acked_inputs=False)
    delivered: dict[str, list[tuple[int, int]]] = {"a": [], "b": []}
    sessions = {
        side: P2PSession(
            player,
            1 - player,
            lambda frame, action, side=side: delivered[side].append((frame, action)),
            clock=clock,
            scheduler=scheduler,
            channel=getattr(link, f"channel_{side}"),
            relay=getattr(link, f"socket_{side}"),
            config=config,
        )
        for side, player in (("a", 0), ("b", 1))
    }
    link.connect(sessions["a"], sessions["b"])
    started = time.perf_counter()
    for session in sessions.values():
        session.edge.on_open()  # pings every 500 ms, over the same lossy link
    for frame in range(N_FRAMES):
        sessions["a"].step(frame, action_for(0, frame))
        sessions["b"].step(frame, action_for(1, frame))
        link.deliver()
        scheduler.advance(FRAME_MS)
    link.drain()
    for session in sessions.values():
        session.close()
    assert scheduler.active == {}
    return Run(link, sessions, delivered, time.perf_counter() - started)


def input_packet_outcomes(channel: FakeChannel, outcomes: list[bool]) -> dict[int, bool]:
    """Whether each input packet (by its current frame) got through, from the link's record."""
    assert len(channel.sent) == len(outcomes)
    result = {}
    for data, arrived in zip(channel.sent, outcomes, strict=True):
        message = decode(data)
        if isinstance(message, InputPacket):
            result[message.current_frame] = arrived
    assert sorted(result) == list(range(N_FRAMES))
    return result


def tolerance(q: float, n: int) -> float:
    return 5 * math.sqrt(5 * q * (1 - q) / n)


@pytest.mark.parametrize("loss", LOSS_LEVELS)
def test_p2p_alone_delivers_one_minus_p_cubed(loss: float) -> None:
    run = simulate(loss, relay_inputs=False, seed=int(loss * 100) + 7)
    q = 1 - loss**REDUNDANCY
    n = N_FRAMES - (REDUNDANCY - 1)
    for sender, receiver, player in (("a", "b", 0), ("b", "a", 1)):
        got = run.delivered[receiver]
        frames = [frame for frame, _ in got]
        # Exactly once, with the right action, whatever was lost.
        assert len(frames) == len(set(frames))
        assert all(action == action_for(player, frame) for frame, action in got)

        # Exactly the frames that at least one surviving packet carried.
        channel = getattr(run.link, f"channel_{sender}")
        arrived = input_packet_outcomes(channel, run.link.stats[("p2p", sender)].outcomes)
        carried = {
            f
            for f in range(N_FRAMES)
            if any(arrived.get(g, False) for g in range(f, f + REDUNDANCY))
        }
        assert set(frames) == carried

        # The receiver's counters agree with the link's record. Packets arrive in order, so a
        # frame not delivered by its own packet was recovered from a later one.
        counters = run.sessions[receiver].parts.inputs.receiver.counters
        packets_arrived = sum(arrived.values())
        assert counters.inputs_delivered == len(frames)
        assert counters.recovered == len(frames) - packets_arrived
        assert counters.gaps_filled == 0  # no other path could fill a gap
        first_seen = max(0, min(g for g, ok in arrived.items() if ok) - (REDUNDANCY - 1))
        newest = max(g for g, ok in arrived.items() if ok)
        horizon = newest - (REDUNDANCY - 1)  # the last packet's oldest frame
        floor = newest - 256 + 1  # the receiver's default history
        missing = [f for f in range(first_seen, N_FRAMES) if f not in carried]
        assert counters.gaps == sum(1 for f in missing if f < horizon)
        assert counters.lost == sum(1 for f in missing if f < floor)

        # The statistics: the fraction of three-packet frames that arrived is about 1 - p^3.
        fraction = sum(1 for f in frames if f < n) / n
        bound = tolerance(q, n)
        print(
            f"\nloss {loss:.0%} {sender}->{receiver}: P2P delivered {fraction:.5f} "
            f"(1 - p^3 = {q:.5f}, |diff| {abs(fraction - q):.5f} <= {bound:.5f}); "
            f"packets dropped {run.link.stats[('p2p', sender)].dropped}"
            f"/{run.link.stats[('p2p', sender)].sent}; {run.seconds:.2f} s"
        )
        assert abs(fraction - q) <= bound
        # And the link really dropped about p of the packets (a broken link would make the
        # statistics above meaningless): binomial, 5 sigma.
        sent = run.link.stats[("p2p", sender)].sent
        drop_rate = run.link.stats[("p2p", sender)].dropped / sent
        assert abs(drop_rate - loss) <= 5 * math.sqrt(loss * (1 - loss) / sent)

    # The ping timer ran over the same link: at 0% loss every ping (one per 500 ms, on each
    # path) was answered, and the health monitor saw no loss.
    if loss == 0.0:
        for session in run.sessions.values():
            stats = session.stats()
            assert (
                stats["pongs_received"]
                == stats["pings_sent"]
                > 2 * (N_FRAMES * FRAME_MS) // 500 - 2
            )
            assert stats["unmatched_pongs"] == 0
            assert session.parts.health.loss_estimate == 0.0


@pytest.mark.parametrize("loss", LOSS_LEVELS)
def test_with_the_lossless_relay_every_input_arrives_exactly_once(loss: float) -> None:
    # The relay is slower than the DataChannel (5 frames), so P2P normally wins and the relay
    # fills what P2P lost, after the receiver has already counted the gap.
    run = simulate(loss, relay_inputs=True, relay_delay=5, seed=int(loss * 100) + 11)
    for receiver, player in (("b", 0), ("a", 1)):
        got = run.delivered[receiver]
        assert Counter(frame for frame, _ in got) == Counter(range(N_FRAMES))
        assert all(action == action_for(player, frame) for frame, action in got)
        counters = run.sessions[receiver].parts.inputs.receiver.counters
        assert counters.inputs_delivered == N_FRAMES
        assert counters.lost == 0
        assert counters.stale == 0
        assert counters.conflicts == 0
        # Every gap P2P left was filled by the relay.
        assert counters.gaps == counters.gaps_filled
        if loss >= 0.1:
            assert counters.gaps > 0
        # Every copy that arrived, by either path, beyond the first of each frame is a duplicate.
        sender = "a" if receiver == "b" else "b"
        copies = 0
        for path, sent in (
            ("p2p", getattr(run.link, f"channel_{sender}").sent),
            ("relay", [data for _, data in getattr(run.link, f"socket_{sender}").emitted]),
        ):
            outcomes = run.link.stats[(path, sender)].outcomes
            for data, arrived in zip(sent, outcomes, strict=True):
                message = decode(data)
                if arrived and isinstance(message, InputPacket):
                    copies += len(message.inputs)
        assert counters.duplicates == copies - N_FRAMES
        stats = run.sessions[receiver].stats()
        print(
            f"\nloss {loss:.0%} + lossless relay -> {receiver}: delivered "
            f"{counters.inputs_delivered}/{N_FRAMES} once each; gaps {counters.gaps} "
            f"all filled; duplicates {stats['duplicates']}; {run.seconds:.2f} s"
        )
