"""The command lines' --version and --help, run as a user runs them, and the launcher's choice of
a local STUN/TURN server for the interactive demo."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

import p2p_transport
from p2p_demo.launcher import is_loopback_host

CLIS = ("p2p_server", "p2p_demo", "p2p_demo.plot_telemetry")


def run_cli(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("module", CLIS)
def test_every_cli_says_its_version(module: str) -> None:
    result = run_cli(module, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"python -m {module} {p2p_transport.__version__}"


@pytest.mark.parametrize(
    ("module", "options"),
    [
        (
            "p2p_server",
            ("--host", "--port", "--log-level", "--data-dir", "--turn-urls", "--turn-ttl"),
        ),
        (
            "p2p_demo",
            ("--host", "--port", "--local-turn", "--frames", "--players", "--loss", "--delay"),
        ),
    ],
)
def test_help_gives_each_option_its_default(module: str, options: tuple[str, ...]) -> None:
    result = run_cli(module, "--help")
    assert result.returncode == 0, result.stderr
    # argparse starts each option's entry on a line of its own, indented by two spaces.
    entries = re.split(r"\n  (?=-)", result.stdout)
    for option in options:
        (described,) = [e for e in entries if re.match(rf"{option}\b(?!-)", e)]
        assert "default" in described, described


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("192.168.1.4", False),
        ("study.example.org", False),
    ],
)
def test_the_interactive_demo_runs_its_own_stun_server_on_loopback(
    host: str, loopback: bool
) -> None:
    assert is_loopback_host(host) is loopback
