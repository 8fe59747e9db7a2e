"""The two-tab demo (or more: ``--players``).

``python -m p2p_demo`` serves the demo page on 127.0.0.1 and prints the URL to open in two
tabs. ``python -m p2p_demo --headless --frames N [--json PATH]`` runs both tabs in headless
Chromium itself (inside ``scripts/netns.sh``): each tab plays Pong (:mod:`p2p_demo.pong`) with a
scripted bot, through the rollback layer and the full Python transport in Pyodide, for N frames
per episode (``--episodes``). It prints a summary, writes a JSON report and exits 0 only if every
input arrived exactly once in both directions, both tabs recorded the same inputs for every
frame, ended on the same checksum, and found no desync. ``--game scripted`` runs the transport
alone instead: a scripted input per frame, each checked on arrival.

``--players N`` (3 to 8) plays team Pong in N tabs, each linked to every other (a mesh); the
report then has one entry per player, and the run is sound only if every input crossed to every
other player exactly once and every tab ended on the same checksum. ``--spectators K`` adds K
tabs that watch from the server's feed; each must end on the players' very episodes.

``--loss P --burst N --delay MS`` impair what each tab sends over the DataChannel (both
directions, each with its own seeded random sequence); ``--route MODE`` pins the routing
(``parallel``, the default, sends every input over both paths, so loss on the DataChannel alone
loses nothing; ``p2p`` leaves the relay out). The report gives, per player, the inputs ``lost``
(never delivered), the rollback figures, the ``route_changes`` with their times and reasons,
and the packets sent on each path. With ``--json PATH`` each player's telemetry
(:meth:`~.session.P2PSession.telemetry`: RTT samples over time, health transitions, route
changes; and the rollback layer's, with every episode's inputs) goes to ``PATH`` with the suffix
``.telemetry.json``; ``python -m p2p_demo.plot_telemetry`` plots it.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import p2p_transport
from p2p_transport.protocol.faults import LinkConfig
from p2p_transport.protocol.routing import RouteMode
from p2p_transport.protocol.rtt import nearest_rank
from p2p_transport.rollback.session import MAX_INPUT_DELAY
from p2p_transport.timing import FRAME_MS
from p2p_transport.wire.signaling import MAX_PLAYERS, MAX_SPECTATORS, PLAYERS_PER_ROOM

__all__ = ["is_loopback_host", "main", "player_summary", "run_headless", "serve_interactive"]

#: Beyond the frames themselves: two Pyodide boots at once take about 4-5 s on 2 cores, and the
#: last inputs need a moment to arrive.
HEADLESS_SLACK_S: Final = 60.0
POLL_S: Final = 0.1
#: After both tabs sent their last input, how long the rest may take to arrive: acked inputs
#: are resent every 100 ms and a reconnection takes under a second, so 5 s is plenty; what has
#: not come by then was lost.
SETTLE_S: Final = 5.0
REPORT_KEYS: Final = (
    "inputs_sent",
    "inputs_received",
    "duplicates",
    "recovered",
    "pings_sent",
    "pongs_received",
    "rtt_min_ms",
    "rtt_p50_ms",
    "rtt_p95_ms",
    "relay_rtt_min_ms",
    "relay_rtt_p50_ms",
    "p2p_packets_sent",
    "relay_packets_sent",
    "fault_dropped",
    "reconnects",
)


#: A Pong tab's rollback figures that go into each player's entry.
ROLLBACK_KEYS: Final = (
    "frames",
    "final_checksum",
    "rollbacks",
    "max_rollback_depth",
    "stall_frames",
    "desyncs",
    "frames_ahead_max",
    "episodes_finished",
)


def player_summary(tab_report: dict[str, Any], ready_ms: float | None) -> dict[str, Any]:
    """One player's entry in the JSON report, from a tab's ``DemoTab.report()``. For a Pong tab,
    ``lost`` and ``delivered_exactly_once`` need the peer's report: see :func:`cross_check`."""
    stats = tab_report["stats"]
    if "links" in stats:
        stats = {**stats, **link_totals(link_stats(tab_report))}
    game = tab_report["game"]
    scripted = game is not None and "frames_received" in game
    entry: dict[str, Any] = {key: stats.get(key) for key in REPORT_KEYS}
    if game is not None and not scripted:
        entry.update({key: game.get(key) for key in ROLLBACK_KEYS})
    entry.update(
        player_index=tab_report["player_index"],
        lost=game["frames"] - game["frames_received"] if scripted else None,
        route=stats.get("route"),
        route_changes=tab_report.get("route_changes", []),
        ready_ms=ready_ms,
        channel_open_ms=tab_report["channel_open_ms"],
        link_open_ms=tab_report.get("link_open_ms") or None,
        # From pairing (a mesh: room_ready, the last join) to the (last) DataChannel open.
        channels_open_after_ms=(
            tab_report["channel_open_ms"] - tab_report["paired_ms"]
            if tab_report.get("channel_open_ms") is not None
            and tab_report.get("paired_ms") is not None
            else None
        ),
        delivered_exactly_once=bool(scripted and game["delivered_exactly_once"]),
        game=game,
        p2p_bytes_per_packet=(
            stats["p2p_bytes_sent"] / stats["p2p_packets_sent"]
            if stats.get("p2p_packets_sent") and "p2p_bytes_sent" in stats
            else None
        ),
        p2p_inputs_delivered=stats.get("p2p_inputs_delivered"),
        relay_inputs_delivered=stats.get("relay_inputs_delivered"),
        health_status=stats.get("health_status"),
    )
    return entry


def link_stats(tab_report: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """A tab's figures per peer, by the peer's index: a pair's one session, a mesh's links."""
    stats = tab_report["stats"]
    if "links" in stats:
        return {int(peer): link for peer, link in stats["links"].items()}
    peer = stats.get("peer_index")
    return {} if peer is None else {int(peer): stats}


#: Per-link round trips: a mesh player's entry gives its worst link's.
WORST_KEYS: Final = (
    "rtt_min_ms",
    "rtt_p50_ms",
    "rtt_p95_ms",
    "relay_rtt_min_ms",
    "relay_rtt_p50_ms",
)
#: Per-link figures a mesh player's entry adds up over its links: the report's counts, and what
#: its other rows are worked out from.
SUMMED_KEYS: Final = (
    *(key for key in REPORT_KEYS if key not in WORST_KEYS),
    "p2p_bytes_sent",
    "p2p_inputs_delivered",
    "relay_inputs_delivered",
)


def link_totals(links: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """A mesh player's figures over its links: counts summed, round trips the worst link's,
    and the routes the links ended on."""
    out: dict[str, Any] = {
        key: sum(link.get(key) or 0 for link in links.values()) for key in SUMMED_KEYS
    }
    for key in WORST_KEYS:
        values = [link[key] for link in links.values() if link.get(key) is not None]
        out[key] = max(values, default=None)
    out["route"] = "/".join(sorted({str(link.get("route")) for link in links.values()}))
    out["health_status"] = "/".join(
        sorted({str(link.get("health_status")) for link in links.values()})
    )
    return out


def cross_check(
    players: list[dict[str, Any]],
    links: dict[int, dict[int, dict[str, Any]]],
    records: list[list[dict[str, Any]]],
) -> bool:
    """Fill in each Pong player's ``lost`` (what the others sent it that never arrived) and
    ``delivered_exactly_once`` from every tab's figures per peer (``links[i][j]``: player
    ``i``'s of its link to ``j``); return whether the match is sound: nothing lost on any link,
    every tab recorded the same inputs for every frame of every episode and the same final
    checksums, and no desync."""
    for entry in players:
        me = entry["player_index"]
        lost: int | None = 0
        for peer, link in links[me].items():
            sent = links.get(peer, {}).get(me, {}).get("inputs_sent")
            received = link.get("inputs_received")
            if sent is None or received is None or lost is None:
                lost = None
            else:
                lost += sent - received
        linked = sorted(links[me]) == sorted(p["player_index"] for p in players if p is not entry)
        entry["lost"] = lost
        entry["delivered_exactly_once"] = linked and lost == 0
    same_records = bool(records[0]) and all(record == records[0] for record in records)
    checksums = {entry["final_checksum"] for entry in players}
    return (
        same_records
        and len(checksums) == 1
        and None not in checksums
        and all(entry["delivered_exactly_once"] and entry["desyncs"] == 0 for entry in players)
    )


def input_delays(sender: dict[str, Any], receiver: dict[str, Any]) -> dict[str, float | None]:
    """How late the receiver got the sender's inputs, from both tabs' ``DemoTab.timing_json()``.

    A delay is arrival minus sending on a common clock (each page's ``performance.timeOrigin``
    plus its own time). The smallest one is the link's own one-way time; what lies beyond it is
    the extra delay that loss and recovery cost, given in frames.
    """
    sent = sender["sent_at_ms"]
    delays = sorted(
        receiver["time_origin_ms"] + arrived - sender["time_origin_ms"] - sent[int(frame)]
        for frame, arrived in receiver["received_at_ms"].items()
        if int(frame) < len(sent)
    )
    if not delays:
        return {
            "one_way_min_ms": None,
            "extra_delay_frames_mean": None,
            "extra_delay_frames_p99": None,
        }
    base = delays[0]
    extra = [(delay - base) / FRAME_MS for delay in delays]
    return {
        "one_way_min_ms": base,
        "extra_delay_frames_mean": sum(extra) / len(extra),
        "extra_delay_frames_p99": nearest_rank(extra, 0.99),
    }


def run_headless(
    frames: int, options: dict[str, Any] | None = None, timeout_s: float | None = None
) -> dict[str, Any]:
    """Run the demo in two headless tabs; return the report (``ok`` says if it was sound)."""
    from playwright.sync_api import sync_playwright

    from p2p_demo.harness import (
        TurnServer,
        launch_chromium,
        netem_on_loopback,
        open_tab,
        require_loopback_namespace,
        wait_ready,
    )
    from p2p_server.server import ServerThread

    require_loopback_namespace()
    options = {"game": "pong", **(options or {})}
    link = options.get("link")
    # Linux netem on the namespace's loopback delays every packet of every path; where the
    # kernel lacks it, each tab emulates the link on everything it receives.
    netem = bool(link) and netem_on_loopback(str(link))
    if link:
        options["link_by"] = "netem" if netem else "the transport's own emulation, every path"
    pong = options["game"] == "pong"
    count = int(options.get("players", 2))
    spectators = int(options.get("spectators", 0))
    play_s = frames * int(options.get("episodes", 1)) * FRAME_MS / 1000
    play_s += float(options.get("late_ms", 0)) / 1000
    deadline_s = timeout_s if timeout_s is not None else play_s + HEADLESS_SLACK_S
    started = time.monotonic()
    with TurnServer() as turn, ServerThread() as server, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            context = browser.new_context()
            tab_options = {"frames": frames, "room": "demo", "ice_servers": turn.ice_servers}
            tab_options.update(options)
            if netem:
                del tab_options["link"]
            watching = {**tab_options, "spectator": True}
            watchers = [open_tab(context, server.url, watching) for _ in range(spectators)]
            pages = [open_tab(context, server.url, tab_options) for _ in range(count)]
            for page in [*watchers, *pages]:
                wait_ready(page)
            reports = _wait_for_games(pages, started + deadline_s)
            watched = _wait_for_spectators(watchers, started + deadline_s + SETTLE_S)
            ready = [page.evaluate("() => window.p2pShim.timings.readyMs") for page in pages]
            telemetry = [
                json.loads(page.evaluate("() => p2pDemo.telemetry_json()")) for page in pages
            ]
            extra = [_page_json(page, "rollback_telemetry_json") for page in pages]
            timings = [_page_json(page, "timing_json") for page in pages]
        finally:
            browser.close()
    players = [
        player_summary(report, ready_ms) for report, ready_ms in zip(reports, ready, strict=True)
    ]
    if pong:
        order = sorted(range(count), key=lambda i: players[i]["player_index"])
        players = [players[i] for i in order]
        links = {report["player_index"]: link_stats(report) for report in reports}
        ok = cross_check(players, links, [extra[i]["episode_records"] for i in order])
        ok = watched_alike(watched, extra[order[0]]["episode_records"]) and ok
        for record, rollback in zip(telemetry, extra, strict=True):
            if record is not None:
                record["rollback"] = rollback
    else:
        for entry, own, other in (
            (players[0], timings[0], timings[1]),
            (players[1], timings[1], timings[0]),
        ):
            entry.update(input_delays(sender=other, receiver=own))
        players.sort(key=lambda entry: entry["player_index"])
        ok = all(entry["delivered_exactly_once"] for entry in players)
    return {
        "frames": frames,
        "options": {k: v for k, v in options.items() if k != "ice_servers"},
        "ok": ok,
        "elapsed_s": round(time.monotonic() - started, 2),
        "players": players,
        "spectators": [entry for entry, _ in watched],
        # Each player's session telemetry; main() writes it to its own file.
        "telemetry": sorted(
            (record for record in telemetry if record is not None),
            key=lambda record: record["player_index"],
        ),
    }


#: A spectator's figures that go into its entry.
SPECTATOR_KEYS: Final = (
    "frames",
    "final_checksum",
    "episodes_finished",
    "frames_behind",
    "catch_up_ticks",
    "most_frames_in_a_tick",
    "inputs_received",
    "duplicate_inputs",
    "malformed_packets",
    "finished",
)


def watched_alike(
    watched: list[tuple[dict[str, Any], list[dict[str, Any]]]], records: list[dict[str, Any]]
) -> bool:
    """Whether every spectator played the players' episodes, input for input and checksum for
    checksum (``same_records`` in each spectator's entry)."""
    for entry, seen in watched:
        entry["same_records"] = bool(records) and seen == records
    return all(entry["same_records"] for entry, _ in watched)


def _wait_for_spectators(
    pages: Sequence[Any], deadline: float
) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Poll the spectators' tabs until each finished its episodes (or the deadline): each one's
    entry and episode records."""
    while True:
        games = [json.loads(page.evaluate("() => p2pDemo.report_json()"))["game"] for page in pages]
        if all(g is not None and g["finished"] for g in games) or time.monotonic() > deadline:
            break
        time.sleep(POLL_S)
    return [
        (
            {"spectator": index, **{key: (game or {}).get(key) for key in SPECTATOR_KEYS}},
            _page_json(page, "records_json"),
        )
        for index, (page, game) in enumerate(zip(pages, games, strict=True))
    ]


def _page_json(page: Any, method: str) -> Any:
    return json.loads(page.evaluate(f"() => p2pDemo.{method}()"))


def _finished(games: list[dict[str, Any] | None]) -> bool:
    """Both tabs stepped their last frame (a Pong tab: finished its last episode)."""
    return all(
        g is not None and (g["finished"] if "finished" in g else g["frames_stepped"] == g["frames"])
        for g in games
    )


def _all_arrived(reports: list[dict[str, Any]]) -> bool:
    """Each tab received every input each other tab sent it (a scripted tab checks its own)."""
    games = [r["game"] for r in reports]
    if all("done" in g for g in games):
        return all(g["done"] for g in games)
    links = {r["player_index"]: link_stats(r) for r in reports}
    return _finished(games) and all(
        peer in links
        and me in links[peer]
        and link["inputs_received"] == links[peer][me]["inputs_sent"]
        for me, own in links.items()
        for peer, link in own.items()
    )


def _wait_for_games(pages: Sequence[Any], deadline: float) -> list[dict[str, Any]]:
    """Poll the tabs until every input arrived, or all finished and then waited
    :data:`SETTLE_S` for the rest (inputs a lossy link lost never come), or the deadline."""
    all_sent_at: float | None = None
    while True:
        reports = [
            json.loads(
                page.evaluate("() => window.p2pDemo ? window.p2pDemo.report_json() : 'null'")
            )
            for page in pages
        ]
        games = [r["game"] if r is not None else None for r in reports]
        if all_sent_at is None and _finished(games):
            all_sent_at = time.monotonic()
        done = all_sent_at is not None and _all_arrived(reports)
        settled = all_sent_at is not None and time.monotonic() - all_sent_at > SETTLE_S
        if done or settled or time.monotonic() > deadline:
            if any(r is None for r in reports):
                raise RuntimeError("a tab never started the demo (see its console)")
            return reports
        time.sleep(POLL_S)


def format_summary(report: dict[str, Any]) -> str:
    pong = any("final_checksum" in player for player in report["players"])
    if pong:
        verdict = (
            "every input arrived exactly once, the same inputs and final checksum on every"
            " side, no desync"
            if report["ok"]
            else "INPUTS MISSING, RECORDS DIFFERENT OR DESYNC"
        )
        count = len(report["players"])
        game = "Pong" if count == 2 else f"team Pong for {count}"
        what = f"{game} through the rollback layer, {report['frames']} frames per episode"
    else:
        verdict = (
            "every input delivered exactly once" if report["ok"] else "INPUTS MISSING OR DUPLICATED"
        )
        what = f"{report['frames']} frames per player"
    lines = [
        f"p2p_transport demo: {what}: {verdict} ({report['elapsed_s']} s)",
        f"options: {json.dumps(report.get('options', {}))}",
        f"{'':28}"
        + "".join(f"{'player ' + str(p['player_index']):>14}" for p in report["players"]),
    ]
    rows = (
        [
            ("frames simulated", "frames", "{}"),
            ("final checksum", "final_checksum", "{:.12}"),
            ("rollbacks", "rollbacks", "{}"),
            ("max rollback depth", "max_rollback_depth", "{}"),
            ("stall frames", "stall_frames", "{}"),
            ("frames ahead max", "frames_ahead_max", "{:.2f}"),
            ("desyncs", "desyncs", "{}"),
        ]
        if pong
        else []
    )
    rows += [
        ("inputs sent", "inputs_sent", "{}"),
        ("inputs received", "inputs_received", "{}"),
        ("inputs lost", "lost", "{}"),
        ("first via p2p", "p2p_inputs_delivered", "{}"),
        ("first via relay", "relay_inputs_delivered", "{}"),
        ("duplicates dropped", "duplicates", "{}"),
        ("recovered by redundancy", "recovered", "{}"),
        ("packets sent p2p", "p2p_packets_sent", "{}"),
        ("packets sent relay", "relay_packets_sent", "{}"),
        ("p2p packets dropped (fault)", "fault_dropped", "{}"),
        ("route at the end", "route", "{}"),
        ("route changes", "route_change_count", "{}"),
        ("reconnections", "reconnects", "{}"),
        ("bytes per p2p packet", "p2p_bytes_per_packet", "{:.1f}"),
        ("one-way min (ms)", "one_way_min_ms", "{:.2f}"),
        ("extra delay mean (frames)", "extra_delay_frames_mean", "{:.3f}"),
        ("extra delay p99 (frames)", "extra_delay_frames_p99", "{:.2f}"),
        ("pings sent", "pings_sent", "{}"),
        ("pongs received", "pongs_received", "{}"),
        ("RTT p50 (ms)", "rtt_p50_ms", "{:.2f}"),
        ("RTT p95 (ms)", "rtt_p95_ms", "{:.2f}"),
        ("relay RTT p50 (ms)", "relay_rtt_p50_ms", "{:.2f}"),
        ("page ready (ms)", "ready_ms", "{:.0f}"),
        ("channel open (ms)", "channel_open_ms", "{:.0f}"),
        ("all open after pairing (ms)", "channels_open_after_ms", "{:.0f}"),
    ]
    for label, key, fmt in rows:
        if key != "route_change_count" and all(key not in p for p in report["players"]):
            continue  # not measured in this kind of run
        cells = "".join(
            f"{(fmt.format(value) if (value := _cell(p, key)) is not None else '-'):>14}"
            for p in report["players"]
        )
        lines.append(f"{label:28}{cells}")
    for watcher in report.get("spectators", []):
        lines.append(
            f"spectator {watcher['spectator']}: {watcher['frames']} frames, final checksum "
            f"{str(watcher['final_checksum'])[:12]}, "
            + ("the players' very episodes" if watcher["same_records"] else "RECORDS DIFFERENT")
            + f" (caught up {watcher['catch_up_ticks']} ticks, at most "
            f"{watcher['most_frames_in_a_tick']} frames a tick)"
        )
    for p in report["players"]:
        for change in p["route_changes"]:
            lines.append(
                f"player {p['player_index']} route at {change['at_ms']:9.0f} ms: "
                f"{change['previous']} -> {change['route']} ({change['reason']})"
            )
    return "\n".join(lines)


def _cell(player: dict[str, Any], key: str) -> Any:
    if key == "route_change_count":
        return len(player["route_changes"])
    return player.get(key)


def telemetry_path_for(report_path: Path) -> Path:
    """Where ``--json PATH`` puts the telemetry: ``demo.json`` -> ``demo.telemetry.json``."""
    return report_path.with_suffix(".telemetry.json")


def serve_interactive(
    host: str,
    port: int,
    local_turn: bool | None = None,
    static_dir: Path | None = None,
    wheels_dir: Path | None = None,
) -> None:
    """Serve the demo page (or the page in ``static_dir``, with the wheels in ``wheels_dir``)
    until interrupted; with ``local_turn`` (by default: when ``host`` is a
    loopback address) also coturn on 127.0.0.1, whose STUN and TURN URLs every page gets with
    ``paired``, with credentials minted for it.

    A browser whose only interface is loopback (``scripts/netns.sh``) gathers no ICE candidate
    without a STUN server there, so without one it never gets a DataChannel and the relay
    carries everything; on a host with a real interface the tabs connect either way.
    """
    from p2p_demo.harness import TurnServer, ice_servers_for
    from p2p_server.server import run_server
    from p2p_server.settings import ServerOptions
    from p2p_server.turn import TurnCredentials

    if local_turn is None:
        local_turn = is_loopback_host(host)
    if not local_turn:
        run_server(host, port, static_dir=static_dir, wheels_dir=wheels_dir)
        return
    secret = secrets.token_hex(16)
    with TurnServer(auth_secret=secret) as turn:
        urls = tuple(str(entry["urls"]) for entry in ice_servers_for(turn.port))
        print(f"coturn on 127.0.0.1:{turn.port} is the pages' STUN/TURN server", flush=True)
        credentials = TurnCredentials(secret.encode(), urls)
        run_server(
            host,
            port,
            static_dir=static_dir,
            wheels_dir=wheels_dir,
            options=ServerOptions(turn=credentials),
        )


def is_loopback_host(host: str) -> bool:
    """``host`` names this machine's loopback (127.0.0.0/8, ::1 or localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m p2p_demo", description=__doc__)
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {p2p_transport.__version__}"
    )
    parser.add_argument("--host", default="127.0.0.1", help="interactive mode: default %(default)s")
    parser.add_argument(
        "--port", type=int, default=8000, help="interactive mode: default %(default)s, 0 picks one"
    )
    parser.add_argument(
        "--static",
        type=Path,
        default=None,
        help="interactive mode: serve this folder's index.html at / instead of the demo page "
        "(your own game's page; default: ./static)",
    )
    parser.add_argument(
        "--wheels",
        type=Path,
        default=None,
        help="interactive mode: the wheels the page installs, listed at /wheels/index.json "
        "(default: ./build/wheels)",
    )
    parser.add_argument(
        "--local-turn",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="interactive mode: run coturn on 127.0.0.1 as the pages' STUN/TURN server (default: "
        "when --host is a loopback address, where browsers gather no candidate without one)",
    )
    parser.add_argument(
        "--headless", action="store_true", help="run both tabs in headless Chromium"
    )
    parser.add_argument(
        "--frames",
        type=int,
        default=600,
        help="frames per episode and player (headless; default %(default)s)",
    )
    parser.add_argument(
        "--game",
        choices=["pong", "scripted"],
        default="pong",
        help="pong through the rollback layer, or scripted inputs alone (default %(default)s)",
    )
    parser.add_argument("--episodes", type=int, default=1, help="Pong episodes (default 1)")
    parser.add_argument(
        "--players",
        type=int,
        default=PLAYERS_PER_ROOM,
        help=f"players in the room, a tab and a bot each ({PLAYERS_PER_ROOM} to {MAX_PLAYERS}; "
        "more than two play team Pong, each tab linked to every other; default %(default)s)",
    )
    parser.add_argument(
        "--spectators",
        type=int,
        default=0,
        help="tabs that watch the game from the server's feed, each checked to end on the "
        "players' episodes (default %(default)s)",
    )
    parser.add_argument(
        "--input-delay", type=int, default=2, help="Pong's input delay in frames (default 2)"
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="write the report here (headless; default: none)"
    )
    faults = parser.add_argument_group("fault injection and routing (headless, both tabs)")
    faults.add_argument(
        "--loss",
        type=float,
        default=0.0,
        help="fraction of DataChannel packets dropped (default %(default)s)",
    )
    faults.add_argument(
        "--burst", type=int, default=1, help="packets dropped per loss event (default %(default)s)"
    )
    faults.add_argument(
        "--delay",
        type=float,
        default=0.0,
        metavar="MS",
        help="added DataChannel delay (default %(default)s)",
    )
    faults.add_argument(
        "--route",
        choices=[mode.value for mode in RouteMode],
        default=RouteMode.PARALLEL.value,
        help="which path inputs take (default %(default)s)",
    )
    faults.add_argument(
        "--seed", type=int, default=0, help="fault injection seed (default %(default)s)"
    )
    faults.add_argument(
        "--link",
        default=None,
        metavar="NETEM",
        help="the whole link, every path (game channel, ping channel, relay), in netem's words, "
        "e.g. 'delay 40ms 5ms loss 5%%': Linux netem on the namespace's loopback where the "
        "kernel has it, else the transport's own emulation in both tabs (default: none)",
    )
    args = parser.parse_args(argv)
    if args.frames < 1:
        parser.error("--frames must be at least 1")
    if args.episodes < 1:
        parser.error("--episodes must be at least 1")
    if not 0 <= args.spectators <= MAX_SPECTATORS:
        parser.error(f"--spectators must be in 0..{MAX_SPECTATORS}")
    if args.spectators and args.game != "pong":
        parser.error("--spectators watch pong")
    if not PLAYERS_PER_ROOM <= args.players <= MAX_PLAYERS:
        parser.error(f"--players must be in {PLAYERS_PER_ROOM}..{MAX_PLAYERS}")
    if args.players != PLAYERS_PER_ROOM and args.game != "pong":
        parser.error("--players above two plays pong (--game scripted is two players')")
    if not 0 <= args.input_delay <= MAX_INPUT_DELAY:
        parser.error(f"--input-delay must be in 0..{MAX_INPUT_DELAY}")
    if not 0.0 <= args.loss <= 1.0:
        parser.error("--loss must be in [0, 1]")
    if args.burst < 1:
        parser.error("--burst must be at least 1")
    if not args.delay >= 0:
        parser.error("--delay must not be negative")
    if args.link is not None:
        try:
            LinkConfig.parse(args.link)
        except ValueError as error:
            parser.error(f"--link: {error}")

    if not args.headless:
        print(
            "Open the printed URL in two browser tabs; they pair, connect over WebRTC and show "
            "live stats. Ctrl-C stops.",
            flush=True,
        )
        serve_interactive(
            args.host, args.port, args.local_turn, static_dir=args.static, wheels_dir=args.wheels
        )
        return 0

    options: dict[str, Any] = {"route": args.route, "game": args.game}
    if args.game == "pong":
        options.update(episodes=args.episodes, input_delay=args.input_delay)
    if args.players != PLAYERS_PER_ROOM:
        options["players"] = args.players
    if args.spectators:
        options["spectators"] = args.spectators
    if args.loss > 0 or args.delay > 0:
        options.update(loss=args.loss, burst=args.burst, delay_ms=args.delay, fault_seed=args.seed)
    if args.link is not None:
        options["link"] = args.link
    report = run_headless(args.frames, options)
    telemetry = report.pop("telemetry", [])
    print(format_summary(report))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"report written to {args.json}")
        telemetry_path = telemetry_path_for(args.json)
        telemetry_file = {"frames": report["frames"], "options": report["options"]}
        telemetry_path.write_text(json.dumps({**telemetry_file, "players": telemetry}) + "\n")
        print(f"telemetry written to {telemetry_path}")
    return 0 if report["ok"] else 1
