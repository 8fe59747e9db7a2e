"""The demo's report and summary (no browser: they are built from tab reports)."""

from __future__ import annotations

from typing import Any

import pytest

from p2p_demo.launcher import (
    cross_check,
    format_summary,
    link_stats,
    main,
    player_summary,
    watched_alike,
)


def tab_report(player: int, frames: int, received: int) -> dict[str, Any]:
    return {
        "player_index": player,
        "channel_open_ms": 3000.0,
        "game": {
            "frames": frames,
            "frames_received": received,
            "delivered_exactly_once": received == frames,
            "done": True,
        },
        "stats": {
            "inputs_sent": frames,
            "inputs_received": received,
            "duplicates": 5,
            "recovered": 2,
            "pings_sent": 10,
            "pongs_received": 9,
            "rtt_p50_ms": 1.5,
            "rtt_p95_ms": 3.25,
            "p2p_packets_sent": 640,
            "relay_packets_sent": 35,
            "fault_dropped": 190,
            "reconnects": 1,
            "route": "p2p",
            "p2p_inputs_delivered": received,
            "relay_inputs_delivered": 0,
            "health_status": "good",
        },
        "route_changes": [
            {
                "at_ms": 8000.0,
                "previous": "p2p",
                "route": "both",
                "target": "relay",
                "reason": "p2p channel not open",
            }
        ],
    }


def test_player_summary_counts_the_inputs_never_delivered() -> None:
    entry = player_summary(tab_report(1, 600, 597), ready_ms=2500.0)
    assert entry["lost"] == 3
    assert entry["delivered_exactly_once"] is False
    assert entry["p2p_packets_sent"] == 640
    assert entry["relay_packets_sent"] == 35
    assert entry["route"] == "p2p"
    assert entry["route_changes"][0]["reason"] == "p2p channel not open"


def test_the_summary_shows_loss_routes_and_packets_per_path() -> None:
    players = [
        player_summary(tab_report(0, 600, 600), 2500.0),
        player_summary(tab_report(1, 600, 597), 2600.0),
    ]
    report = {
        "frames": 600,
        "options": {"route": "p2p", "loss": 0.3},
        "ok": False,
        "elapsed_s": 14.0,
        "players": players,
    }
    text = format_summary(report)
    lines = {line[:28].strip(): line[28:].split() for line in text.splitlines()}
    assert lines["inputs lost"] == ["0", "3"]
    assert lines["packets sent p2p"] == ["640", "640"]
    assert lines["packets sent relay"] == ["35", "35"]
    assert lines["p2p packets dropped (fault)"] == ["190", "190"]
    assert lines["route changes"] == ["1", "1"]
    assert "INPUTS MISSING" in text
    assert '"loss": 0.3' in text
    assert "player 1 route at      8000 ms: p2p -> both (p2p channel not open)" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--loss", "1.5"], "--loss"),
        (["--burst", "0"], "--burst"),
        (["--delay", "-1"], "--delay"),
        (["--route", "carrier-pigeon"], "--route"),
    ],
)
def test_bad_fault_options_are_refused(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--headless", *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_input_delays_compare_two_tabs_on_their_common_clock() -> None:
    from p2p_demo.launcher import input_delays
    from p2p_transport.timing import FRAME_MS

    # The sender's page started 1000 ms before the receiver's: its times read 1000 ms later.
    sender = {"time_origin_ms": 5_000.0, "sent_at_ms": [100.0, 116.0, 133.0, 150.0]}
    receiver = {
        "time_origin_ms": 6_000.0,
        # Arrivals 0.5 ms after sending, except frame 2, which came two frames late; JSON keys.
        "received_at_ms": {"0": -899.5, "1": -883.5, "2": -866.5 + 2 * FRAME_MS, "3": -849.5},
    }
    delays = input_delays(sender, receiver)
    assert delays["one_way_min_ms"] == pytest.approx(0.5)
    assert delays["extra_delay_frames_p99"] == pytest.approx(2.0)
    assert delays["extra_delay_frames_mean"] == pytest.approx(0.5)
    assert input_delays(sender, {"time_origin_ms": 0.0, "received_at_ms": {}}) == {
        "one_way_min_ms": None,
        "extra_delay_frames_mean": None,
        "extra_delay_frames_p99": None,
    }


def mesh_report(player: int, players: int, sent: int, received: dict[int, int]) -> dict[str, Any]:
    """A team Pong tab's report: per link, what it sent that peer and received from it."""
    links = {
        str(peer): {
            "inputs_sent": sent,
            "inputs_received": received.get(peer, sent),
            "p2p_packets_sent": 100,
            "rtt_p50_ms": 1.0 + peer,
            "route": "both",
        }
        for peer in range(players)
        if peer != player
    }
    return {
        "player_index": player,
        "channel_open_ms": 3000.0,
        "game": {},
        "stats": {"links": links},
    }


def pong_entry(report: dict[str, Any], checksum: str = "ab") -> dict[str, Any]:
    entry = player_summary(report, ready_ms=None)
    entry.update(final_checksum=checksum, desyncs=0)
    return entry


def test_a_room_of_four_is_sound_only_if_every_link_delivered_everything() -> None:
    reports = [mesh_report(p, 4, 600, {}) for p in range(4)]
    # Player 2 got 597 of player 0's 600 inputs: its entry says 3 lost, and the run fails.
    reports[2] = mesh_report(2, 4, 600, {0: 597})
    players = [pong_entry(report) for report in reports]
    links = {report["player_index"]: link_stats(report) for report in reports}
    records = [[{"episode": 0, "inputs": [[1, 2, 3, 4]]}]] * 4
    assert not cross_check(players, links, records)
    assert [entry["lost"] for entry in players] == [0, 0, 3, 0]
    assert [entry["delivered_exactly_once"] for entry in players] == [True, True, False, True]
    # A player's entry adds up its links: 3 links of 600 sent, the worst link's RTT.
    assert players[0]["inputs_sent"] == 1800 and players[0]["rtt_p50_ms"] == 4.0
    fine = [pong_entry(mesh_report(p, 4, 600, {})) for p in range(4)]
    fine_links = {p: link_stats(mesh_report(p, 4, 600, {})) for p in range(4)}
    assert cross_check(fine, fine_links, records)
    other = [*records[:3], [{"episode": 0, "inputs": [[1, 2, 3, 5]]}]]
    assert not cross_check(fine, fine_links, other)


def test_a_spectator_passes_only_on_the_players_very_episodes() -> None:
    records = [{"episode": 0, "final_checksum": "ab", "inputs": [[1, 2, 3]]}]
    same = ({"spectator": 0}, [dict(records[0])])
    different = ({"spectator": 1}, [{**records[0], "final_checksum": "cd"}])
    assert watched_alike([same], records)
    assert not watched_alike([same, different], records)
    assert [same[0]["same_records"], different[0]["same_records"]] == [True, False]
    assert not watched_alike([({"spectator": 2}, [])], records)
