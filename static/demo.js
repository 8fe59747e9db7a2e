// The demo page's glue: start one DemoTab (Python) with the options in the URL fragment, and draw
// its numbers and an RTT chart. All transport logic is in Python; this only renders.
(function () {
  "use strict";
  const REFRESH_MS = 250;

  function pageOptions() {
    const fragment = decodeURIComponent(location.hash.slice(1));
    const options = fragment ? JSON.parse(fragment) : {};
    const room = new URLSearchParams(location.search).get("room");
    if (room) options.room = room;
    // A page that played in this room before (sessionStorage outlives a reload, not the tab)
    // takes the game under way back from the other player, if there is one.
    const key = `p2p_demo:played:${options.room || ""}`;
    if (sessionStorage.getItem(key)) options.resume = true;
    sessionStorage.setItem(key, "1");
    return options;
  }

  const missing = (value) => value === null || value === undefined || Number.isNaN(value);

  function fmt(value, digits) {
    return missing(value) ? "–" : Number(value).toFixed(digits);
  }

  // Several figures in one cell, "–" for each not measured yet (before pairing stats() is empty).
  const both = (...values) => values.map((v) => (missing(v) ? "–" : v)).join(" / ");
  const sum = (a, b) => (missing(a) || missing(b) ? undefined : a + b);

  // What the connection is doing, in words, from the latest lifecycle event (README: events).
  const STATUS_TEXT = {
    joined: (d) => `joined room ${d.room}: waiting for the other player`,
    // A room of more than two says how many are missing; the tab's own repeat says how long.
    waiting_for_peer: (d) =>
      d.missing !== undefined
        ? `waiting for ${d.missing} more player${d.missing === 1 ? "" : "s"} of ${d.players}`
        : `waiting for the other player (${Math.round(d.waited_ms / 1000)} s)`,
    room_ready: (d) => `all ${d.players} players are in: connecting to each`,
    // After connect_failed, its sentence stays: the retries that follow add nothing new.
    server_unreachable: (d, before, log) => {
      const failed = log.findLast((e) => e.event === "connect_failed");
      return failed ? failed.message : `cannot reach the server: ${d.reason} (retrying)`;
    },
    connect_failed: (d) => d.message,
    room_full: (d) => `room ${d.room} is full: two players are in it already`,
    refused: (d) => d.message,
    paired: () => "paired with the other player: connecting",
    rejoined: () => "back on the server with the same player: the game went on",
    peer_absent: () => "the other player's page went away: waiting for it to come back",
    peer_resumed: () => "the other player's page came back: the game goes on",
    peer_gone: () => "the other player did not come back: the game ended",
    connected: () => "connected via P2P",
    reconnected: () => "connected via P2P (reconnected)",
    degraded: (d) => `P2P degraded (${d.reason}): the relay carries the game`,
    ice_failed: (d) =>
      "no P2P connection" +
      (d.candidate_errors.length
        ? ": " + d.candidate_errors.map((e) => `${e.url} ${e.error_code} ${e.error_text}`).join("; ")
        : ""),
    // After ice_failed, that event's text (which names the ICE errors) comes first.
    p2p_unavailable: (d, before) =>
      (before && before.event === "ice_failed" ? STATUS_TEXT.ice_failed(before) + "; " : "") +
      (d.message || `the relay alone carries the game (${d.reason.replaceAll("_", " ")})`),
    // "disconnected" is also silence on every path, which is not leaving: only the server's
    // word (peer_left) says the other player left. Before any path opened, silence means the
    // connection is still being set up.
    disconnected: (d, before, log) =>
      d.reason === "peer left"
        ? "the other player left"
        : pathEverOpened(log)
          ? `nothing heard from the other player: ${d.reason} (waiting for it)`
          : "paired with the other player: still connecting",
  };

  function pathEverOpened(eventLog) {
    return eventLog.some((e) => ["open", "connected", "p2p_unavailable"].includes(e.event));
  }

  // Whether, at index i, the log already said P2P is unavailable (and nothing connected since):
  // a later "P2P degraded" or "reconnected" (the peer heard again, over the relay) then adds
  // nothing, and would hide why P2P never came up.
  function p2pGivenUp(eventLog, i) {
    for (let j = i - 1; j >= 0; j--) {
      const name = eventLog[j].event;
      if (name === "p2p_unavailable") return true;
      if (name === "connected" || name === "reconnected") return false;
    }
    return false;
  }

  function statusFrom(eventLog) {
    for (let i = eventLog.length - 1; i >= 0; i--) {
      const entry = eventLog[i];
      const describe = STATUS_TEXT[entry.event];
      const p2pNoise = entry.event === "degraded" || entry.event === "reconnected";
      if (!describe || (p2pNoise && p2pGivenUp(eventLog, i))) continue;
      // ice_failed's text names the errors: the p2p_unavailable right after it keeps it.
      const before = entry.event === "p2p_unavailable" ? eventLog[i - 1] : undefined;
      return describe(entry, before, eventLog);
    }
    return null;
  }

  function render(report, history, nowS) {
    const status = statusFrom(report.event_log || []);
    if (status) document.getElementById("p2p-status").textContent = status;
    const s = report.stats || {};
    const game = report.game || {};
    const rollbackRows = report.game_kind === "pong" ? [
      ["episode / frame", both(game.episode, game.frames_advanced)],
      ["score", (game.score || []).join(" : ")],
      ["rollbacks (max depth)", `${game.rollbacks ?? 0} (${game.max_rollback_depth ?? 0})`],
      ["frames predicted / stalled", `${game.frames_predicted ?? 0} / ${game.stall_frames ?? 0}`],
      ["frames ahead of the peer", fmt(game.frames_ahead, 2)],
      ["desyncs", game.desyncs ?? 0],
    ] : [];
    // A room of more than two: one line per peer (its link's route and RTT).
    const linkRows = Object.entries(s.links || {}).map(([peer, l]) => [
      `link to player ${peer}: route / RTT p50 (ms)`, both(l.route, fmt(l.rtt_p50_ms, 2)),
    ]);
    const rows = [
      ["player", report.player_index],
      ...linkRows,
      ...rollbackRows,
      ["health (of the path carrying the game)",
        s.health_status ? `${s.health_status} (${s.health_path ?? "no path"})` : "–"],
      ["RTT last / p50 / p95 (ms)", both(fmt(s.rtt_last_ms, 2), fmt(s.rtt_p50_ms, 2), fmt(s.rtt_p95_ms, 2))],
      ["relay RTT p50 (ms)", fmt(s.relay_rtt_p50_ms, 2)],
      ["inputs sent / received", both(s.inputs_sent, s.inputs_received)],
      ...(report.game_kind === "pong" ? [] : [
        ["frames verified", `${game.frames_received ?? 0} of ${game.frames ?? "–"}`],
      ]),
      ["duplicates dropped (by design: each input travels in several packets and on both paths)", s.duplicates],
      ["recovered from redundancy", s.recovered],
      ["first delivered by p2p / relay", both(s.p2p_inputs_delivered, s.relay_inputs_delivered)],
      ["packets sent p2p / relay", both(s.p2p_packets_sent, s.relay_packets_sent)],
      ["route (mode)", s.route === undefined ? "–" : `${s.route} (${s.route_mode})`],
      ["last route change", lastChange(report.route_changes)],
      ["reconnections", s.reconnects],
      ["p2p packets dropped (fault injection)", s.inputs_sent === undefined ? undefined : s.fault_dropped ?? "off"],
      ["pings sent / pongs", both(s.pings_sent, s.pongs_received)],
      ["garbage dropped", sum(s.p2p_decode_errors, s.relay_decode_errors)],
    ];
    document.getElementById("p2p-stats").innerHTML = rows
      .map(([k, v]) => `<tr><th>${k}</th><td>${missing(v) ? "–" : v}</td></tr>`)
      .join("");
    drawChart(document.getElementById("p2p-chart"), history, nowS);
  }

  function lastChange(changes) {
    if (!changes || changes.length === 0) return "none";
    const c = changes[changes.length - 1];
    return `${c.previous} → ${c.route} at ${(c.at_ms / 1000).toFixed(1)} s (${c.reason})`;
  }

  // Round-trip times of the last CHART_WINDOW_S seconds on both paths, with axes, units and a
  // legend. history: {p2p: [[seconds, ms], ...], relay: [...]}.
  const CHART_WINDOW_S = 60;
  const PATHS = [
    ["p2p", "#1565c0", "P2P (DataChannel)"],
    ["relay", "#ef6c00", "relay (server)"],
  ];

  function drawChart(canvas, history, nowS) {
    const ctx = canvas.getContext("2d");
    const { width, height } = canvas;
    const m = { left: 60, right: 10, top: 22, bottom: 26 };
    const w = width - m.left - m.right;
    const h = height - m.top - m.bottom;
    ctx.clearRect(0, 0, width, height);
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = "#222";
    ctx.textAlign = "left";
    ctx.fillText(`Round-trip time, last ${CHART_WINDOW_S} s`, m.left, 14);
    const recent = PATHS.map(([key]) => history[key].filter(([t]) => nowS - t <= CHART_WINDOW_S));
    const top = Math.max(1, ...recent.flat().map(([, ms]) => ms)) * 1.2;
    ctx.strokeStyle = "#ccc";
    ctx.fillStyle = "#555";
    ctx.textAlign = "right";
    for (const fraction of [0, 0.5, 1]) {
      const y = m.top + h - fraction * h;
      ctx.beginPath();
      ctx.moveTo(m.left, y);
      ctx.lineTo(m.left + w, y);
      ctx.stroke();
      ctx.fillText(`${(top * fraction).toFixed(1)} ms`, m.left - 4, y + 4);
    }
    ctx.textAlign = "center";
    for (let s = 0; s <= CHART_WINDOW_S; s += 15) {
      const x = m.left + w - (s / CHART_WINDOW_S) * w;
      ctx.fillText(s === 0 ? "now" : `-${s} s`, x, height - 8);
    }
    PATHS.forEach(([key, colour, label], i) => {
      ctx.strokeStyle = colour;
      ctx.beginPath();
      recent[i].forEach(([t, ms], j) => {
        const x = m.left + w - ((nowS - t) / CHART_WINDOW_S) * w;
        const y = m.top + h - (ms / top) * h;
        if (j === 0) ctx.moveTo(x, y);
        else ctx.lineTo(x, y);
      });
      ctx.stroke();
      ctx.fillStyle = colour;
      ctx.textAlign = "right";
      ctx.fillText(label, width - m.right - (1 - i) * 130, 14);
    });
  }

  // Pong: the paddles, the ball and the score, as the Python game last simulated them.
  function drawGame(canvas, view) {
    const ctx = canvas.getContext("2d");
    const scale = canvas.width / view.width;
    ctx.fillStyle = "#111";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.fillStyle = "#eee";
    view.paddles.forEach((top, seat) => {
      ctx.fillRect(view.paddle_x[seat] * scale, top * scale, view.paddle_w * scale,
        view.paddle_h * scale);
    });
    ctx.fillRect(view.ball[0] * scale, view.ball[1] * scale, view.ball_size * scale,
      view.ball_size * scale);
    ctx.font = `${16 * scale}px monospace`;
    ctx.textAlign = "center";
    ctx.fillText(`${view.score[0]}   ${view.score[1]}`, canvas.width / 2, 20 * scale);
    if (view.state !== "running") {
      const others = view.players > 2 ? "the other players" : "the other player";
      ctx.fillText(view.state === "ended" ? "episode over" : `waiting for ${others}`,
        canvas.width / 2, canvas.height / 2);
    }
  }

  // Arrow keys or W/S move your paddle; until the first key, a bot plays for you.
  const KEY_BITS = { ArrowUp: 1, KeyW: 1, ArrowDown: 2, KeyS: 2 };

  function watchKeys(tab) {
    let bits = 0;
    const update = (event, down) => {
      const bit = KEY_BITS[event.code];
      if (!bit) return;
      event.preventDefault();
      bits = down ? bits | bit : bits & ~bit;
      tab.set_keys(bits);
    };
    addEventListener("keydown", (event) => update(event, true));
    addEventListener("keyup", (event) => update(event, false));
  }

  async function main() {
    await window.p2pBoot;
    if (!p2pShim.ready) return; // not booted (?autoboot=0): the caller drives the page
    const module = p2pShim.pyodide.pyimport("p2p_demo.tab");
    const options = pageOptions();
    const tab = module.DemoTab(JSON.stringify(options));
    module.destroy();
    window.p2pDemo = tab;
    tab.start();
    if (options.ui === false) return; // benchmarks: no periodic work on the main thread
    if (options.game !== "scripted") {
      const canvas = document.getElementById("game-canvas");
      canvas.hidden = false;
      watchKeys(tab);
      const frame = () => {
        const view = JSON.parse(tab.view_json());
        if (view) drawGame(canvas, view);
        requestAnimationFrame(frame);
      };
      requestAnimationFrame(frame);
    }
    const history = { p2p: [], relay: [] };
    const seen = { p2p: 0, relay: 0 };
    setInterval(() => {
      const report = JSON.parse(tab.report_json());
      window.p2pLastReport = report;
      const nowS = performance.now() / 1000;
      for (const [key, prefix] of [["p2p", ""], ["relay", "relay_"]]) {
        const samples = report.stats[prefix + "rtt_samples"] || 0;
        if (samples > seen[key]) {
          seen[key] = samples;
          history[key].push([nowS, report.stats[prefix + "rtt_last_ms"]]);
          while (nowS - history[key][0][0] > CHART_WINDOW_S) history[key].shift();  // never empties: the newest is now
        }
      }
      render(report, history, nowS);
    }, REFRESH_MS);
  }

  main().catch((err) => {
    console.error("demo failed", err);
    window.p2pDemoError = String(err && err.message ? err.message : err);
  });
})();
