// The demo page's glue: start one DemoTab (Python) with the options in the URL fragment, and draw
// its numbers and an RTT chart. All transport logic is in Python; this only renders.
(function () {
  "use strict";
  const REFRESH_MS = 250;
  // The chart keeps the last 120 RTT points: 60 s at two pings a second.
  const CHART_POINTS = 120;

  function pageOptions() {
    const fragment = decodeURIComponent(location.hash.slice(1));
    const options = fragment ? JSON.parse(fragment) : {};
    const room = new URLSearchParams(location.search).get("room");
    if (room) options.room = room;
    return options;
  }

  function fmt(value, digits) {
    return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
  }

  function render(report, history) {
    const s = report.stats;
    const game = report.game || {};
    const rows = [
      ["player", report.player_index],
      ["health", s.health_status],
      ["RTT last / p50 / p95 (ms)", `${fmt(s.rtt_last_ms, 2)} / ${fmt(s.rtt_p50_ms, 2)} / ${fmt(s.rtt_p95_ms, 2)}`],
      ["relay RTT p50 (ms)", fmt(s.relay_rtt_p50_ms, 2)],
      ["inputs sent / received", `${s.inputs_sent} / ${s.inputs_received}`],
      ["frames verified", `${game.frames_received ?? 0} of ${game.frames ?? "–"}`],
      ["duplicates dropped", s.duplicates],
      ["recovered from redundancy", s.recovered],
      ["first delivered by p2p / relay", `${s.p2p_inputs_delivered} / ${s.relay_inputs_delivered}`],
      ["packets sent p2p / relay", `${s.p2p_packets_sent} / ${s.relay_packets_sent}`],
      ["route (mode)", `${s.route} (${s.route_mode})`],
      ["last route change", lastChange(report.route_changes)],
      ["reconnections", s.reconnects],
      ["p2p packets dropped (fault injection)", s.fault_dropped ?? "off"],
      ["pings sent / pongs", `${s.pings_sent} / ${s.pongs_received}`],
      ["garbage dropped", s.p2p_decode_errors + s.relay_decode_errors],
    ];
    document.getElementById("p2p-stats").innerHTML = rows
      .map(([k, v]) => `<tr><th>${k}</th><td>${v ?? "–"}</td></tr>`)
      .join("");
    drawChart(document.getElementById("p2p-chart"), history);
  }

  function lastChange(changes) {
    if (!changes || changes.length === 0) return "none";
    const c = changes[changes.length - 1];
    return `${c.previous} → ${c.route} at ${(c.at_ms / 1000).toFixed(1)} s (${c.reason})`;
  }

  function drawChart(canvas, history) {
    const ctx = canvas.getContext("2d");
    const { width, height } = canvas;
    ctx.clearRect(0, 0, width, height);
    ctx.strokeStyle = "#ccc";
    ctx.strokeRect(0, 0, width, height);
    if (history.length < 2) return;
    const top = Math.max(1, ...history) * 1.2;
    ctx.fillStyle = "#555";
    ctx.fillText(`${top.toFixed(1)} ms`, 4, 12);
    ctx.strokeStyle = "#1565c0";
    ctx.beginPath();
    history.forEach((rtt, i) => {
      const x = (i / (CHART_POINTS - 1)) * width;
      const y = height - (rtt / top) * height;
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.stroke();
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
    const history = [];
    let lastSamples = 0;
    setInterval(() => {
      const report = JSON.parse(tab.report_json());
      window.p2pLastReport = report;
      if (report.stats.rtt_samples > lastSamples) {
        lastSamples = report.stats.rtt_samples;
        history.push(report.stats.rtt_last_ms);
        if (history.length > CHART_POINTS) history.shift();
      }
      render(report, history);
    }, REFRESH_MS);
  }

  main().catch((err) => {
    console.error("demo failed", err);
    window.p2pDemoError = String(err && err.message ? err.message : err);
  });
})();
