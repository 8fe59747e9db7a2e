"""The README's tutorial, run as it is written: its commands are read from the README's "Build,
serve, play" block, the wheels built, the page served, and two Chromium tabs play the game to
its end with the same confirmed final checksum."""

from __future__ import annotations

import shlex
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from conftest import BOOT_TIMEOUT_MS, PROJECT_ROOT, launched
from playwright.sync_api import BrowserContext

#: Building two small wheels takes a few seconds; a loaded machine gets more.
BUILD_TIMEOUT_S = 180
#: The rope is 20 over after about 80 frames (1.3 s) once the tabs are paired.
GAME_TIMEOUT_MS = 60_000


def tutorial_commands() -> list[list[str]]:
    """The shell commands of the README's "Build, serve, play" block, comments left out."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme.split("### Build, serve, play", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [shlex.split(line) for line in block.splitlines() if line and not line.startswith("#")]


@pytest.fixture
def tutorial_url() -> Iterator[str]:
    build, serve = tutorial_commands()
    subprocess.run(build, cwd=PROJECT_ROOT, check=True, timeout=BUILD_TIMEOUT_S)
    # The tests already run in the loopback namespace; the README's port may be taken.
    assert serve[0] == "scripts/netns.sh"
    with launched([*serve[1:], "--port", "0"]) as url:
        yield url


def test_the_tutorial_builds_serves_and_plays(context: BrowserContext, tutorial_url: str) -> None:
    room = f"tutorial-{uuid.uuid4().hex}"
    pages = [context.new_page() for _ in range(2)]
    for page in pages:
        page.goto(f"{tutorial_url}/?room={room}")
    reports = []
    for page in pages:
        page.wait_for_function("() => window.tugOfWarReport !== undefined", timeout=BOOT_TIMEOUT_MS)
        page.wait_for_function("() => window.tugOfWarReport.episode_over", timeout=GAME_TIMEOUT_MS)
        reports.append(page.evaluate("() => window.tugOfWarReport"))
        assert page.inner_text("#status") == "over: player 1 won"
    assert {report["player_index"] for report in reports} == {0, 1}
    assert "connected" in reports[0]["events"]  # over a DataChannel, not the relay alone
    checksums = [report["final_checksums"] for report in reports]
    assert len(checksums[0]) == 1 and checksums[0] == checksums[1]
