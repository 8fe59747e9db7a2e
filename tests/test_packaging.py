"""The three wheels: the game wheel carries the transport and its shim and nothing else; the
server and the demo are wheels of their own; the dev extra pins what theirs pin."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

ROOT: Final = Path(__file__).resolve().parent.parent
PROJECTS: Final = {
    "p2p_transport": ROOT,
    "p2p_server": ROOT / "packaging" / "p2p_server",
    "p2p_demo": ROOT / "packaging" / "p2p_demo",
}
# The server's and the demo's own modules (besides __init__.py and __main__.py).
SERVER_MODULES: Final = frozenset(
    {
        "server.py",
        "rooms.py",
        "relay_socket.py",
        "cluster.py",
        "static_files.py",
        "limits.py",
        "tokens.py",
        "turn.py",
        "stats.py",
        "settings.py",
        "telemetry_store.py",
        "door.py",
        "packets.py",
        "input_recorder.py",
        "spectator_feed.py",
    }
)
DEMO_MODULES: Final = frozenset(
    {
        "launcher.py",
        "tab.py",
        "harness.py",
        "stall_probe.py",
        "plot_telemetry.py",
        "scripted_game.py",
        "pong.py",
        "match.py",
    }
)
# By their file names anywhere in the tree.
NOT_IN_THE_GAME_WHEEL: Final = SERVER_MODULES | DEMO_MODULES


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, list[str]]]:
    out = tmp_path_factory.mktemp("wheels")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        + ["-w", str(out)]
        + [str(path) for path in PROJECTS.values()],
        check=True,
        cwd=ROOT,
    )
    names: dict[str, list[str]] = {}
    for name in PROJECTS:
        (wheel,) = out.glob(f"{name}-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            names[name] = archive.namelist()
    yield names


def modules(names: list[str], package: str) -> set[str]:
    return {n.removeprefix(f"{package}/") for n in names if n.startswith(f"{package}/")}


def test_the_game_wheel_carries_the_transport_and_its_shim_only(
    wheels: dict[str, list[str]],
) -> None:
    names = wheels["p2p_transport"]
    packages = {n.split("/")[0] for n in names if not n.endswith(".dist-info/RECORD")}
    assert packages == {"p2p_transport", "p2p_transport-0.1.0.dist-info"}
    files = modules(names, "p2p_transport")
    assert "browser/p2p_shim.js" in files
    assert "py.typed" in files
    assert {Path(f).name for f in files}.isdisjoint(NOT_IN_THE_GAME_WHEEL)
    assert not any("__pycache__" in n for n in names)


@pytest.mark.parametrize(
    ("package", "expected"), [("p2p_server", SERVER_MODULES), ("p2p_demo", DEMO_MODULES)]
)
def test_the_server_and_the_demo_are_wheels_of_their_own(
    wheels: dict[str, list[str]], package: str, expected: frozenset[str]
) -> None:
    names = wheels[package]
    files = {f for f in modules(names, package) if "__pycache__" not in f}
    assert files == {"__init__.py", "__main__.py", *expected}
    assert not any(n.startswith("p2p_transport/") for n in names)
    assert not any("__pycache__" in n for n in names)


def _requirements(path: Path, extra: str | None = None) -> set[str]:
    project = tomllib.loads((path / "pyproject.toml").read_text())["project"]
    if extra is None:
        return set(project["dependencies"])
    return set(project["optional-dependencies"][extra])


def test_the_dev_extra_pins_what_the_server_and_the_demo_pin() -> None:
    dev = _requirements(ROOT, "dev")
    own = {"p2p_transport==0.1.0", "p2p_server==0.1.0"}
    for project, extras in (("p2p_server", [None]), ("p2p_demo", [None, "launcher", "plot"])):
        for extra in extras:
            assert _requirements(PROJECTS[project], extra) - own <= dev, (project, extra)


def test_the_game_wheel_depends_on_nothing() -> None:
    assert _requirements(ROOT) == set()
