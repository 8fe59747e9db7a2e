"""plot_telemetry: telemetry to PNG; the demo writes telemetry next to its report."""

from __future__ import annotations

import builtins
import json
from pathlib import Path
from typing import Any

import pytest

from p2p_demo import launcher, plot_telemetry
from tests.test_telemetry import run_game

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: An empty 11x7 inch figure is a few kB; axes, two series, lines and labels make it far more.
MIN_PLOT_BYTES = 20_000


def write_demo_telemetry(path: Path) -> list[dict[str, Any]]:
    game = run_game()
    players = [session.telemetry() for session in game.sessions.values()]
    path.write_text(json.dumps({"frames": game.frame, "options": {}, "players": players}))
    return players


def test_a_telemetry_file_plots_to_a_png(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    source = tmp_path / "demo.telemetry.json"
    write_demo_telemetry(source)
    out = tmp_path / "plots" / "rtt.png"
    assert plot_telemetry.main([str(source), "-o", str(out), "--title", "fake link"]) == 0
    data = out.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > MIN_PLOT_BYTES
    assert str(out) in capsys.readouterr().out


def test_a_single_session_record_plots_too(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    source = tmp_path / "one.json"
    source.write_text(json.dumps(run_game().a.telemetry()))
    out = tmp_path / "one.png"
    assert plot_telemetry.main([str(source), "-o", str(out)]) == 0
    assert out.read_bytes().startswith(PNG_SIGNATURE)


def test_files_that_are_not_telemetry_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    source = tmp_path / "report.json"
    source.write_text(json.dumps({"frames": 10, "players": [{"player_index": 0}]}))
    assert plot_telemetry.main([str(source), "-o", str(tmp_path / "x.png")]) == 1
    assert "not a p2p_transport.session.telemetry record" in capsys.readouterr().err
    record = run_game().a.telemetry()
    record["schema_version"] = 99
    source.write_text(json.dumps(record))
    assert plot_telemetry.main([str(source), "-o", str(tmp_path / "x.png")]) == 1
    assert "schema_version 99" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_a_version_2_record_still_plots(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    record = run_game().a.telemetry()
    # Version 3 changed only what ``state`` says after close(), which the plot does not read.
    record["schema_version"] = 2
    source = tmp_path / "v2.json"
    source.write_text(json.dumps(record))
    assert plot_telemetry.main([str(source), "-o", str(tmp_path / "v2.png")]) == 0
    assert (tmp_path / "v2.png").stat().st_size > 0


def test_without_matplotlib_the_command_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_import = builtins.__import__

    def no_matplotlib(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    assert plot_telemetry.main([str(tmp_path / "t.json"), "-o", str(tmp_path / "x.png")]) == 2
    assert "needs matplotlib: pip install matplotlib" in capsys.readouterr().err


def test_the_demo_writes_each_players_telemetry_next_to_its_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    game = run_game()
    telemetry = [session.telemetry() for session in game.sessions.values()]

    def fake_run(frames: int, options: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "frames": frames,
            "options": options,
            "ok": True,
            "elapsed_s": 1.0,
            "players": [],
            "telemetry": telemetry,
        }

    monkeypatch.setattr(launcher, "run_headless", fake_run)
    report_path = tmp_path / "reports" / "demo.json"
    assert launcher.main(["--headless", "--frames", "10", "--json", str(report_path)]) == 0
    assert launcher.telemetry_path_for(report_path) == tmp_path / "reports" / "demo.telemetry.json"
    report = json.loads(report_path.read_text())
    assert "telemetry" not in report  # kept out of the report, in a file of its own
    written = json.loads((tmp_path / "reports" / "demo.telemetry.json").read_text())
    assert written["frames"] == 10
    assert written["players"] == telemetry
    assert [r["player_index"] for r in plot_telemetry.sessions_in(written)] == [0, 1]


def test_records_with_wall_clock_anchors_share_one_time_axis(tmp_path: Path) -> None:
    # Two players' records as the server keeps them: pages opened 2.5 s apart, so the same
    # wall-clock moment reads 2500 ms less on the later page's clock.
    game = run_game()
    a, b = (session.telemetry() for session in game.sessions.values())
    a["time_origin_unix_ms"], b["time_origin_unix_ms"] = 1_700_000_000_000.0, 1_700_000_002_500.0
    offsets, label = plot_telemetry.time_offsets([a, b])
    first = min(
        anchor + record["clock"]["session_created_at_ms"]
        for anchor, record in ((1_700_000_000_000.0, a), (1_700_000_002_500.0, b))
    )
    assert offsets == [1_700_000_000_000.0 - first, 1_700_000_002_500.0 - first]
    assert offsets[1] - offsets[0] == 2500.0  # a time on b's clock lands 2.5 s later on the axis
    assert label.startswith("wall time")
    # Without an anchor on every record, each keeps its own clock.
    del b["time_origin_unix_ms"]
    own, own_label = plot_telemetry.time_offsets([a, b])
    assert own == [-a["clock"]["session_created_at_ms"], -b["clock"]["session_created_at_ms"]]
    assert own_label.startswith("time since the session started")


def test_several_kept_files_plot_together(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    game = run_game()
    files = []
    for index, session in enumerate(game.sessions.values()):
        telemetry = {**session.telemetry(), "time_origin_unix_ms": 1.7e12 + 1000.0 * index}
        kept = {"room": "r", "player_index": index, "record": {"telemetry": telemetry}}
        files.append(tmp_path / f"player-{index}.json")
        files[-1].write_text(json.dumps(kept))
    out = tmp_path / "both.png"
    assert plot_telemetry.main([*map(str, files), "-o", str(out)]) == 0
    assert out.read_bytes().startswith(PNG_SIGNATURE)
    assert len(out.read_bytes()) > MIN_PLOT_BYTES
