// p2p_shim.js: the only JavaScript p2p_transport needs. It boots Pyodide, micropip and the
// project's wheels (loudly: any failure is shown on the page and rethrown), and gives Python an
// interval timer that tests can audit. Everything else lives in Python.
// A classic script (no modules, no build step) so a page can include it with one <script> tag.
(function () {
  "use strict";

  // Matches the micropip wheel in a list of wheel URLs: it must be loaded before micropip can
  // install the others.
  const MICROPIP_WHEEL = /(^|\/)micropip-[^/]*\.whl$/;
  const ERROR_ELEMENT_ID = "p2p-error";
  const WARNING_ELEMENT_ID = "p2p-warning";
  const INSTALLERS = new Set(["micropip", "archive"]);

  // Python's intervals still running (a test asserts none are left behind), by the id handed to
  // Python: the function, the period asked, the browser's timer.
  const intervals = new Map();
  let nextIntervalId = 1;
  // The shortest period any interval fires at (0: none), see throttleTimers.
  let throttleMs = 0;
  let bootPromise = null;

  const shim = {
    ready: false,
    error: null,
    // What the page should know but need not stop for (see warnIfNotIsolated).
    warnings: [],
    pyodide: null,
    // performance.now() values, i.e. milliseconds since navigation started.
    timings: {},

    // Boot once; later calls return the same promise.
    boot(options) {
      if (!bootPromise) bootPromise = boot(options || {});
      return bootPromise;
    },

    // For a page whose game loop is JavaScript: resolves, once the peer is paired, to a
    // connection whose methods take and return plain values (see the README, "From JavaScript").
    connect(options) {
      return connect(options || {});
    },

    // Wrappers for Python: the browser's, plus a count of live intervals and a way to make them
    // fire as a background tab's do (throttleTimers), since a headless page is never throttled.
    setInterval(fn, ms) {
      const id = nextIntervalId++;
      intervals.set(id, { fn, ms, timer: window.setInterval(fn, Math.max(ms, throttleMs)) });
      return id;
    },
    clearInterval(id) {
      const interval = intervals.get(id);
      if (interval) window.clearInterval(interval.timer);
      intervals.delete(id);
    },
    activeIntervals() {
      return intervals.size;
    },
    // Every interval of Python's fires at most every `ms` from now on (0: as asked again), as
    // Chromium wakes a hidden tab's timers about once a second (tests of hidden tabs).
    throttleTimers(ms) {
      throttleMs = ms;
      for (const interval of intervals.values()) {
        window.clearInterval(interval.timer);
        interval.timer = window.setInterval(interval.fn, Math.max(interval.ms, ms));
      }
    },

    // A message handler that passes Python only event.data: cheaper than a proxy of the event.
    forwardData(fn) {
      return (event) => fn(event.data);
    },

    // Moves a DataChannel into a worker that notes when each message arrives and leaves, even
    // while this page's main thread is busy (times are on the page's performance.now() timeline):
    // onData(data, arrivalMs) gets each message, onState(readyState) the channel's state.
    // send(bytes, tag, heldSinceMs, holdOffset): with a tag, onLeft(tag, leftMs) says when the
    // packet left; with heldSinceMs, a big-endian u32 of the microseconds since then is written at
    // byte holdOffset as it leaves. Returns {send, close()}, or undefined where the browser
    // cannot move a DataChannel into a worker (transferable RTCDataChannel is recent in Chromium
    // and missing in Firefox): the caller then goes without.
    workerChannel(channel, onData, onState, onLeft) {
      let worker;
      try {
        worker = new Worker(workerUrl());
        worker.postMessage({ channel }, [channel]);
      } catch (err) {
        if (worker) worker.terminate();
        console.info(`p2pShim: no worker-held channel here (${err.name}: ${err.message})`);
        return undefined;
      }
      const origin = performance.timeOrigin;
      worker.onmessage = (e) => {
        const m = e.data;
        if (m.state) onState(m.state);
        else if (m.left !== undefined) onLeft(m.left, m.at - origin);
        else onData(m.data, m.at - origin);
      };
      return {
        send: (bytes, tag, heldSinceMs, holdOffset) =>
          worker.postMessage({
            send: bytes,
            tag,
            heldSince: heldSinceMs === undefined ? undefined : heldSinceMs + origin,
            holdOffset,
          }),
        close: () => {
          worker.postMessage({ close: true });
          worker.terminate();
        },
      };
    },
  };

  // The worker behind workerChannel: it only stamps arrivals and departures.
  const WORKER_SOURCE = `
    let channel = null;
    const state = () => postMessage({ state: channel.readyState });
    onmessage = (e) => {
      const m = e.data;
      if (m.channel) {
        channel = m.channel;
        channel.binaryType = "arraybuffer";
        channel.onopen = channel.onclose = state;
        channel.onmessage = (ev) =>
          postMessage({ data: ev.data, at: performance.timeOrigin + performance.now() }, [ev.data]);
        state();
      } else if (m.send && channel && channel.readyState === "open") {
        const now = performance.timeOrigin + performance.now();
        if (m.heldSince !== undefined) {
          const us = Math.min(Math.max(0, Math.round((now - m.heldSince) * 1000)), 0xffffffff);
          new DataView(m.send.buffer, m.send.byteOffset).setUint32(m.holdOffset, us);
        }
        channel.send(m.send);
        if (m.tag !== undefined) postMessage({ left: m.tag, at: now });
      } else if (m.close && channel) {
        channel.close();
      }
    };`;
  let workerBlobUrl = null;
  function workerUrl() {
    if (!workerBlobUrl) {
      workerBlobUrl = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "text/javascript" }));
    }
    return workerBlobUrl;
  }

  function mark(name) {
    shim.timings[name] = performance.now();
  }

  function loadScript(src) {
    return new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = src;
      script.onload = resolve;
      script.onerror = () => reject(new Error("could not load " + src));
      document.head.appendChild(script);
    });
  }

  // A box at the top of the page (the page's own element with that id, if it has one).
  function showBox(id, role, colours, text) {
    let el = document.getElementById(id);
    if (!el) {
      el = document.createElement("pre");
      el.id = id;
      (document.body || document.documentElement).prepend(el);
    }
    el.setAttribute("role", role);
    el.style.cssText = colours + ";padding:0.5em;white-space:pre-wrap";
    el.hidden = false;
    el.textContent = text;
  }

  function showError(message) {
    showBox(ERROR_ELEMENT_ID, "alert", "color:#b00;background:#fee;border:1px solid #b00",
      "p2p_transport failed to start: " + message);
  }

  // Without cross-origin isolation the page's clock is coarse (100 us instead of 5 us), and the
  // round-trip times and telemetry with it: the transport works, but the page should say so.
  function warnIfNotIsolated() {
    if (window.crossOriginIsolated) return;
    const warning =
      "this page is not cross-origin isolated, so its clock has 100 us resolution instead of " +
      "5 us and round-trip times are coarser: serve it with the headers " +
      "Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp";
    shim.warnings.push(warning);
    console.warn("p2p_transport: " + warning);
    showBox(WARNING_ELEMENT_ID, "status", "color:#7a5200;background:#fff8e1;border:1px solid #c90",
      "p2p_transport: " + warning);
  }

  // Python import that throws a readable error instead of a bare PythonError.
  function verifyImport(pyodide, name, hint) {
    try {
      pyodide.pyimport(name).destroy();
    } catch (err) {
      const detail = err && err.message ? err.message : String(err);
      throw new Error("cannot import " + name + " " + hint + ": " + detail);
    }
  }

  function finish(pyodide, packageName, status) {
    mark("wheelsMs");
    verifyImport(pyodide, packageName, "after installing the wheels");
    mark("readyMs");
    shim.pyodide = pyodide;
    shim.ready = true;
    status("ready in " + Math.round(shim.timings.readyMs) + " ms");
    return pyodide;
  }

  // The archive installer unpacks wheels without resolving what they require: this lists, as
  // "<package> needs <requirement>", every requirement (extras aside) that none of them brought,
  // so a page learns it at boot instead of from an ImportError later.
  const MISSING_REQUIREMENTS_PY = `
import os, re
def _missing_requirements(site, names):
    # The METADATA files read as text: importlib.metadata would import the email parser and more
    # into every page's boot.
    norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()
    infos = [entry for entry in os.listdir(site) if entry.endswith(".dist-info")]
    installed = {norm(entry.split("-")[0]) for entry in infos}
    unpacked = {norm(name) for name in names}
    missing = []
    for info in infos:
        name = info.split("-")[0]
        if norm(name) not in unpacked:
            continue
        with open(os.path.join(site, info, "METADATA"), encoding="utf-8") as metadata:
            for line in metadata:
                if line.startswith("Requires-Dist:") and "extra ==" not in line:
                    needed = re.match(r"[A-Za-z0-9._-]+", line[len("Requires-Dist:"):].strip())
                    if needed and norm(needed.group(0)) not in installed:
                        missing.append(name + " needs " + needed.group(0))
    return "\\n".join(missing)
`;

  // A Python exception's own line ("ValueError: ..."), without the traceback above it.
  function pythonMessage(err) {
    const text = err && err.message ? err.message : String(err);
    const lines = text.trim().split("\n");
    return lines[lines.length - 1];
  }

  // socket: a socket.io-client socket the page has already (a mug page's, which did the lobby),
  // for the transport to attach to; it is not JSON, so it goes to Python on its own.
  // resume: {save() -> string, load(text, detail)}: the game handed to this page when it comes
  // back after a reload, and handed by it to the other player's (README, "From JavaScript").
  function connect({ onInput, onEvent, socket, resume, ...options }) {
    if (!shim.ready) {
      return Promise.reject(new Error("p2pShim.connect(): await p2pShim.boot() first"));
    }
    if (typeof onInput !== "function") {
      return Promise.reject(
        new Error("p2pShim.connect(): onInput(frame, action, player) is required"),
      );
    }
    if (onEvent !== undefined && typeof onEvent !== "function") {
      return Promise.reject(new Error("p2pShim.connect(): onEvent must be a function"));
    }
    if (
      resume != null &&
      (typeof resume !== "object" ||
        typeof resume.save !== "function" ||
        typeof resume.load !== "function")
    ) {
      return Promise.reject(
        new Error("p2pShim.connect(): resume must be {save() -> string, load(text, detail)}"),
      );
    }
    return new Promise((resolve, reject) => {
      let py = null;
      const live = () => {
        if (!py) throw new Error("this connection is closed");
        return py;
      };
      const conn = {
        playerIndex: null,
        playerCount: null,
        // What load() was given when this page took its game back after a reload, else null.
        resumed: null,
        step: (frame, action) => live().step(frame, action),
        // Takes the P2P path away (tests; in a room of more than two, to one peer): the relay
        // carries that link from then on.
        closeChannel: (peer) => live().close_channel(peer),
        stats: () => JSON.parse(live().stats_json()),
        telemetry: () => JSON.parse(live().telemetry_json()),
        // Resolves once the server has the record on disk (see the README, "Keep the telemetry").
        async saveTelemetry(extra) {
          let task = null;
          try {
            task = live().save_telemetry_json(JSON.stringify(extra === undefined ? null : extra));
            return JSON.parse(await task);
          } catch (err) {
            throw new Error(pythonMessage(err));
          } finally {
            if (task) task.destroy();
          }
        },
        close() {
          if (!py) return;
          py.close();
          py.destroy();
          py = null;
        },
      };
      const api = shim.pyodide.pyimport("p2p_transport.browser.js_api");
      try {
        py = api.JsConnection(
          JSON.stringify(options),
          onInput,
          onEvent || undefined,
          (playerIndex, playerCount, resumedJson) => {
            conn.playerIndex = playerIndex ?? null; // null: a spectator
            conn.playerCount = playerCount;
            conn.resumed = resumedJson ? JSON.parse(resumedJson) : null;
            resolve(conn);
          },
          (message) => {
            // Closed after the Python handler that refused has returned, not from inside it.
            setTimeout(() => conn.close(), 0);
            reject(new Error(message));
          },
          socket || undefined,
          resume ? () => resume.save() : undefined,
          resume ? (text, detailJson) => resume.load(text, JSON.parse(detailJson)) : undefined,
        );
      } catch (err) {
        reject(new Error(pythonMessage(err)));
        return;
      } finally {
        api.destroy();
      }
      py.connect();
    });
  }

  async function fetchWheel(url) {
    const response = await fetch(url);
    if (!response.ok) throw new Error(url + " answered " + response.status);
    return response.arrayBuffer();
  }

  // wheelUrls: an array of .whl URLs, or a promise of one (resolved first, so a failure to list
  // the wheels is reported like any other boot failure).
  // installer: "archive" (default) unpacks the wheels straight into site-packages, fetched while
  // Pyodide loads, and checks that every requirement is among them: this package's wheels are
  // pure and need nothing else, and the page is ready with no cost beyond Pyodide's own boot.
  // "micropip" loads micropip (about 0.3-0.9 s more) and installs each wheel with it: for wheels
  // whose dependencies the page does not list.
  async function boot({
    pyodideBase,
    wheelUrls = [],
    packageName = "p2p_transport",
    installer = "archive",
    onStatus,
  }) {
    const status = (text) => {
      if (onStatus) onStatus(text);
    };
    try {
      if (!pyodideBase) throw new Error("boot() needs pyodideBase");
      if (!INSTALLERS.has(installer)) throw new Error("unknown installer " + installer);
      warnIfNotIsolated();
      const base = pyodideBase.endsWith("/") ? pyodideBase : pyodideBase + "/";
      mark("bootStartMs");

      status("loading Pyodide");
      if (typeof window.loadPyodide !== "function") await loadScript(base + "pyodide.js");
      const loading = window.loadPyodide({ indexURL: base });
      loading.catch(() => {}); // awaited below; a failure while the wheel list loads is not lost
      const urls = await wheelUrls;
      const packageUrls = urls.filter((url) => !MICROPIP_WHEEL.test(url));
      const fetched = installer === "archive" ? packageUrls.map(fetchWheel) : [];
      const pyodide = await loading;
      mark("pyodideLoadedMs");

      if (installer === "archive") {
        const sitePackages = pyodide.runPython("import site; site.getsitepackages()[0]");
        for (const [i, url] of packageUrls.entries()) {
          status("unpacking " + url.split("/").pop());
          pyodide.unpackArchive(await fetched[i], "wheel", { extractDir: sitePackages });
        }
        // A wheel's distribution name is its file name up to the first "-".
        const names = packageUrls.map((url) => url.split("/").pop().split("-")[0]);
        pyodide.runPython(MISSING_REQUIREMENTS_PY);
        const check = pyodide.globals.get("_missing_requirements");
        const found = check(sitePackages, names);
        check.destroy();
        const missing = found ? found.split("\n") : [];
        if (missing.length) {
          throw new Error(
            "the archive installer does not resolve dependencies: " + missing.join(", ") +
              '; add their wheels to wheelUrls, or boot with installer: "micropip"',
          );
        }
        return finish(pyodide, packageName, status);
      }

      // micropip comes from its wheel URL: the PyPI wheel's hash differs from the one in
      // pyodide-lock.json, so loading it by name fails the integrity check.
      const micropipUrl = urls.find((url) => MICROPIP_WHEEL.test(url));
      if (!micropipUrl) throw new Error("no micropip wheel in " + JSON.stringify(urls));
      status("loading micropip");
      const loadErrors = [];
      // loadPackage resolves even when the load fails (it only logs), so collect its errors and
      // verify the import afterwards.
      await pyodide.loadPackage(micropipUrl, {
        errorCallback: (msg) => loadErrors.push(msg),
        messageCallback: () => {},
      });
      const loadDetail = loadErrors.length ? " (" + loadErrors.join("; ") + ")" : "";
      verifyImport(pyodide, "micropip", "after loading " + micropipUrl + loadDetail);
      mark("micropipMs");

      const micropip = pyodide.pyimport("micropip");
      try {
        for (const url of urls) {
          if (url === micropipUrl) continue;
          status("installing " + url.split("/").pop());
          try {
            await micropip.install(url);
          } catch (err) {
            // micropip does not check the HTTP status: a 404 surfaces as "not a zip file", so
            // name the URL to make the cause findable.
            const detail = err && err.message ? err.message : String(err);
            throw new Error("micropip could not install " + url + ": " + detail);
          }
        }
      } finally {
        micropip.destroy();
      }
      return finish(pyodide, packageName, status);
    } catch (err) {
      const message = err && err.message ? err.message : String(err);
      shim.error = message;
      console.error("p2p_shim boot failed:", err);
      showError(message);
      status("error: " + message);
      throw err;
    }
  }

  window.p2pShim = shim;
})();
