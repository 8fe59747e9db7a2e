"""Plot telemetry files: RTT over time per player and path, route changes as vertical lines.

``python -m p2p_demo.plot_telemetry FILE [FILE ...] -o out.png`` reads what
:meth:`~.session.P2PSession.telemetry` returned (one session's record, a list of them, the
demo's ``*.telemetry.json`` with its ``players`` list, or a record the server kept with
``save_telemetry``) and writes a PNG with one panel per session: each path's RTT samples over
time in seconds, and a dashed line at each route change labelled with the route it went to.
Health transitions away from ``good`` shade the time the link spent degraded. When every record
carries its page's wall-clock anchor (``time_origin_unix_ms``, which browser records have), the
panels share one time axis, wall time since the first session started: two players' records
line up.

Needs matplotlib (in the ``dev`` extra; ``pip install matplotlib``): it is imported only here, so
the transport itself never depends on it, and its absence is reported in one line, not a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import p2p_transport
from p2p_transport.session.telemetry import SAME_FIELDS_AS_VERSION, SCHEMA

__all__ = ["degraded_spans", "main", "plot", "sessions_in", "time_offsets"]

#: Each panel's size in inches: wide enough for an hour of samples to stay legible.
PANEL_SIZE_IN: Final = (11.0, 3.6)
DPI: Final = 110
#: One colour per path, the same in every panel; route-change lines are coloured by the route
#: they went to, so a line says which path the inputs moved to.
PATH_COLOURS: Final = {"p2p": "tab:blue", "relay": "tab:orange", "both": "tab:purple"}
DEGRADED_COLOUR: Final = "tab:red"
MS_PER_S: Final = 1000.0
#: A pause longer than this many ping intervals between samples (a closed channel, pongs lost)
#: breaks the line, so the plot does not draw a link that was measured where it was not.
GAP_INTERVALS: Final = 3
#: Headroom above the highest sample, so the route-change labels along the top stay readable.
Y_HEADROOM: Final = 1.6


class TelemetryFileError(ValueError):
    """The file is not a telemetry record this version can read."""


def sessions_in(data: Any) -> list[dict[str, Any]]:
    """The session records in a loaded telemetry file, checked for schema and version."""
    records: list[Any]
    if isinstance(data, dict) and isinstance(data.get("record"), dict):
        # Kept by the server: the page's record, whose session telemetry is under "telemetry".
        records = [data["record"].get("telemetry")]
    elif isinstance(data, dict) and "players" in data:
        records = list(data["players"])
    elif isinstance(data, list):
        records = data
    else:
        records = [data]
    if not records:
        raise TelemetryFileError("the file holds no session telemetry")
    for record in records:
        if not isinstance(record, dict) or record.get("schema") != SCHEMA:
            raise TelemetryFileError(f"not a {SCHEMA} record")
        # The plot does not read ``state``, the one field version 3 changed.
        if record.get("schema_version") not in SAME_FIELDS_AS_VERSION:
            raise TelemetryFileError(
                f"schema_version {record.get('schema_version')!r}; this version reads "
                f"{', '.join(map(str, sorted(SAME_FIELDS_AS_VERSION)))}"
            )
    return records


def degraded_spans(record: dict[str, Any], end_ms: float) -> list[tuple[float, float, str]]:
    """(start, end, label) of each stretch the game's health was not ``good``, judged by the
    path that carried the game (``game_health_transitions``: a game the relay carries alone is
    as healthy as the relay); a record from before that field is judged by the DataChannel's."""
    game = record.get("game_health_transitions")
    if game is not None:
        changes = [
            (at_ms, to, f"health {to} ({path or 'no path'})")
            for at_ms, path, _previous, to in game["rows"]
        ]
    else:
        changes = [
            (at_ms, to, f"p2p health {to}")
            for at_ms, _previous, to in record["health_transitions"]["rows"]
        ]
    spans: list[tuple[float, float, str]] = []
    start: float | None = None
    label = ""
    for at_ms, to, what in changes:
        if start is not None:
            spans.append((start, at_ms, label))
            start = None
        if to != "good":
            start, label = at_ms, what
    if start is not None:
        spans.append((start, end_ms, label))
    return spans


def _with_gaps(
    times: list[float], values: list[float], max_gap_s: float
) -> tuple[list[float], list[float]]:
    """The series with a NaN wherever samples are further apart than ``max_gap_s``."""
    out_t: list[float] = []
    out_v: list[float] = []
    for i, (t, v) in enumerate(zip(times, values, strict=True)):
        if i and t - times[i - 1] > max_gap_s:
            out_t.append((t + times[i - 1]) / 2)
            out_v.append(float("nan"))
        out_t.append(t)
        out_v.append(v)
    return out_t, out_v


def time_offsets(records: Sequence[dict[str, Any]]) -> tuple[list[float], str]:
    """What to add to each record's times (ms, its own clock) to put it on the plot's axis, and
    the axis's label. With every record's wall-clock anchor, the axis is wall time since the
    first session started, shared by all; otherwise each session's time since it started."""
    anchors = [record.get("time_origin_unix_ms") for record in records]
    starts = [record["clock"]["session_created_at_ms"] for record in records]
    if all(isinstance(anchor, int | float) for anchor in anchors):
        first = min(anchor + start for anchor, start in zip(anchors, starts, strict=True))
        offsets = [anchor - first for anchor in anchors]
        return offsets, "wall time since the first session started (s)"
    return [-start for start in starts], "time since the session started (s, its own clock)"


def plot(records: Sequence[dict[str, Any]], out: Path, title: str | None = None) -> None:
    """Draw ``records`` (one panel each) to the PNG ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    offsets, x_label = time_offsets(records)
    right = max(
        (record["clock"]["recorded_at_ms"] + offset) / MS_PER_S
        for record, offset in zip(records, offsets, strict=True)
    )
    fig, axes = plt.subplots(
        len(records),
        1,
        figsize=(PANEL_SIZE_IN[0], PANEL_SIZE_IN[1] * len(records)),
        squeeze=False,
        sharex=False,
    )
    for ax, record, offset in zip(axes[:, 0], records, offsets, strict=True):
        origin = -offset  # the record's own time that sits at 0 on the axis
        end_ms = record["clock"]["recorded_at_ms"]
        shaded: set[str] = set()
        for start, stop, label in degraded_spans(record, end_ms):
            ax.axvspan(
                (start - origin) / MS_PER_S,
                (stop - origin) / MS_PER_S,
                color=DEGRADED_COLOUR,
                alpha=0.12 if "warning" in label else 0.25,
                linewidth=0,
                label=None if label in shaded else label,
            )
            shaded.add(label)
        highest = 0.0
        for path, series in record["rtt"].items():
            rows = series["rows"]
            if not rows:
                continue
            at_column = series["columns"].index("at_ms")
            rtt_column = series["columns"].index("rtt_ms")
            times = [(row[at_column] - origin) / MS_PER_S for row in rows]
            values = [row[rtt_column] for row in rows]
            highest = max(highest, *values)
            interval_ms = series.get("covers_ms", 0) / series["capacity"] or MS_PER_S
            times, values = _with_gaps(times, values, GAP_INTERVALS * interval_ms / MS_PER_S)
            dropped = f", {series['dropped']} older dropped" if series["dropped"] else ""
            ax.plot(
                times,
                values,
                marker=".",
                markersize=3,
                linewidth=0.8,
                color=PATH_COLOURS.get(path),
                label=f"{path} RTT ({len(rows)} samples{dropped})",
            )
        labelled = False
        for at_ms, _previous, route, _target, reason in record["route_changes"]["rows"]:
            x = (at_ms - origin) / MS_PER_S
            ax.axvline(
                x,
                color=PATH_COLOURS.get(route, "gray"),
                linestyle="--",
                linewidth=1,
                label=None if labelled else "route change (colour: new route)",
            )
            labelled = True
            ax.annotate(
                f"-> {route}: {reason}",
                xy=(x, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(2, -2),
                textcoords="offset points",
                rotation=90,
                fontsize=7,
                va="top",
                ha="left",
                color="dimgray",
            )
        ax.set_title(
            f"player {record['player_index']} (peer {record['peer_index']}): "
            f"route mode {record['route_mode']}, "
            f"{record['route_changes_total']} route changes, health {record['health_status']}",
            fontsize=10,
        )
        ax.set_ylabel("RTT (ms)")
        ax.set_xlabel(x_label)
        ax.set_ylim(bottom=0, top=max(highest, 1.0) * Y_HEADROOM)
        ax.set_xlim(left=0, right=max(right, 1.0))
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI, format="png")
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m p2p_demo.plot_telemetry",
        description="Plot RTT over time, with route changes, from a telemetry JSON file to PNG.",
    )
    parser.add_argument(
        "telemetry", type=Path, nargs="+", help="telemetry JSON files (their records together)"
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {p2p_transport.__version__}"
    )
    parser.add_argument("-o", "--output", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--title", default=None, help="a title above the panels")
    args = parser.parse_args(argv)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print(
            "plot_telemetry needs matplotlib: pip install matplotlib "
            "(or the project's dev extra: pip install -e '.[dev]')",
            file=sys.stderr,
        )
        return 2
    records: list[dict[str, Any]] = []
    for path in args.telemetry:
        try:
            records += sessions_in(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError, TelemetryFileError) as error:
            print(f"cannot read {path}: {error}", file=sys.stderr)
            return 1
    plot(records, args.output, args.title)
    print(f"plot written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
