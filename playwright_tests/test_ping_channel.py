"""A browser that cannot move a DataChannel into a worker still connects and measures RTT.

Transferable RTCDataChannel is recent in Chromium and missing in Firefox, where handing the ping
channel to its worker throws a DataCloneError. Here one tab's ``Worker.prototype.postMessage``
throws that error for a channel, as such a browser does: that tab must go without a ping channel,
the other must notice and stop using its own, and both must play on and measure RTT on the game
channel with the version-1 ping and pong.
"""

from __future__ import annotations

from typing import Final

from playwright.sync_api import BrowserContext
from test_transport import SHORT_FRAMES, assert_no_page_errors, open_pair

from p2p_demo.harness import TurnServer
from p2p_server.server import ServerThread

# The first tab to load takes the part of the browser without transferable DataChannels.
NO_TRANSFER_JS: Final = """
if (!localStorage.getItem("no-transfer-taken")) {
  localStorage.setItem("no-transfer-taken", "1");
  window.noTransfer = true;
  const post = Worker.prototype.postMessage;
  Worker.prototype.postMessage = function (message, transfer) {
    if (message && message.channel) {
      throw new DOMException("RTCDataChannel is not transferable", "DataCloneError");
    }
    return post.call(this, message, transfer);
  };
}
"""
PING_INTERVAL_MS: Final = 100.0


def test_without_transferable_channels_rtt_is_measured_on_the_game_channel(
    context: BrowserContext, console_messages: list[str], server: ServerThread, turn: TurnServer
) -> None:
    context.add_init_script(NO_TRANSFER_JS)
    tabs = open_pair(
        context,
        server,
        turn,
        console_messages,
        frames=SHORT_FRAMES,
        ping_interval_ms=PING_INTERVAL_MS,
    )
    for tab in tabs:
        tab.wait_game_done(SHORT_FRAMES)
    without = [tab for tab in tabs if tab.page.evaluate("() => window.noTransfer === true")]
    assert len(without) == 1
    for tab in tabs:
        report = tab.report()
        stats = report["stats"]
        assert report["game"]["delivered_exactly_once"], report["game"]
        # Two seconds of pings every 100 ms, all answered on the game channel.
        assert stats["rtt_samples"] >= 10, stats
        assert stats["p2p_pongs_received"] >= 10, stats
        assert stats["naive_rtt_samples"] == 0
        assert stats["held_pongs_received"] == stats["held_pongs_sent"] == 0
        if tab is without[0]:
            assert stats["ping_channel"] == "none", stats
        else:
            # Its channel was closed before the connection was up, which the peer may never hear
            # of: then its probes went unanswered, as with a peer that has no ping channel.
            assert stats["ping_channel"] in ("unanswered", "closed"), stats
    assert any("no worker-held channel here (DataCloneError" in line for line in console_messages)
    assert_no_page_errors(console_messages)
