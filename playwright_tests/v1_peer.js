// A test peer that speaks only what deployed interactive_gym / mug peers speak, written from the
// layouts and semantics in shared/PLATFORM_NOTES.md: version-1 inputs (0x01, the last three in
// each packet), pings and pongs (0x02 / 0x03), keepalives (0x04), the pre-game validation
// (0x10 / 0x11, then one JSON text greeting), answers to input requests (0x12 -> 0x13), and
// episode end, episode ready and state hashes (0x05 / 0x06 / 0x07; a peer's 0x06 arriving after
// this side sent its own is answered with this side's again, once).
// Anything else is an unknown type: counted per type, as a deployed peer would log it.
// It pairs through the reference server (join, paired, webrtc_signal) as the answering side.
// window.v1Peer.start({room, iceServers, frames}) starts it; window.v1Peer.report() reads it.
(function () {
  "use strict";
  const FRAME_MS = 1000 / 60;
  const REDUNDANCY = 3;
  const VALIDATION_DELAY_MS = 100;
  const PING_INTERVAL_MS = 500;
  const KNOWN = new Set([0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x10, 0x11, 0x12, 0x13, 0x14]);

  // The demo's scripted action (p2p_demo.scripted_game.scripted_action), in doubles: exact for
  // the frame numbers of a test.
  const scriptedAction = (player, frame) =>
    Math.floor((frame * 2654435761 + player * 40503) / 2048) % 256;

  const state = {
    started: false,
    channel: null,
    player: null,
    peer: null,
    openAtMs: null,
    validatedAtMs: null,
    sentPing: false,
    gotPong: false,
    sawPeerPing: false,
    framesSent: 0,
    received: {},
    wrongActions: 0,
    duplicates: 0,
    rtts: [],
    texts: 0,
    episodeEnds: [],
    episodeReadies: [],
    stateHashes: [],
    readySent: {},
    // Per type byte: counts, and the time (ms since open) of the last one.
    receivedByType: {},
    sentByType: {},
    lastUnknownAtMs: null,
  };

  function count(table, type) {
    table[type] = (table[type] || 0) + 1;
  }

  function view(length, type) {
    const bytes = new Uint8Array(length);
    bytes[0] = type;
    return [bytes, new DataView(bytes.buffer)];
  }

  function send(channel, bytes) {
    if (channel.readyState !== "open") return;
    channel.send(bytes);
    count(state.sentByType, bytes[0]);
  }

  function timestamped(type, timestampMs) {
    const [bytes, dv] = view(9, type);
    dv.setFloat64(1, timestampMs);
    return bytes;
  }

  function inputPacket(frame) {
    const first = Math.max(0, frame - REDUNDANCY + 1);
    const n = frame - first + 1;
    const [bytes, dv] = view(9 + 5 * n, 0x01);
    dv.setUint16(1, state.player);
    dv.setUint32(3, frame);
    dv.setUint8(7, n);
    dv.setUint8(8, 0);
    for (let i = 0; i < n; i++) {
      dv.setUint32(9 + 5 * i, first + i);
      dv.setUint8(13 + 5 * i, scriptedAction(state.player, first + i));
    }
    return bytes;
  }

  function inputResponse(start, end) {
    const frames = [];
    for (let f = Math.max(0, start); f <= end && f < state.framesSent; f++) frames.push(f);
    const [bytes, dv] = view(5 + 5 * frames.length, 0x13);
    dv.setUint16(1, state.player);
    dv.setUint16(3, frames.length);
    frames.forEach((f, i) => {
      dv.setUint32(5 + 5 * i, f);
      dv.setUint8(9 + 5 * i, scriptedAction(state.player, f));
    });
    return bytes;
  }

  function episodeReady(episode, hash) {
    const [bytes, dv] = view(13, 0x06);
    dv.setUint32(1, episode);
    bytes.set(new TextEncoder().encode(hash), 5);
    return bytes;
  }

  // The three episode messages, as a deployed peer sends them at an episode's end.
  function sendEpisodeMessages({ endFrame, episode, nextHash, hashFrame, digest }) {
    const channel = state.channel;
    const [end, endView] = view(9, 0x05);
    endView.setUint32(1, endFrame);
    endView.setUint32(5, episode);
    send(channel, end);
    const [hashed, hashView] = view(13, 0x07);
    hashView.setUint32(1, hashFrame);
    hashed.set(digest, 5);
    send(channel, hashed);
    state.readySent[episode + 1] = nextHash;
    send(channel, episodeReady(episode + 1, nextHash));
  }

  function checkValidated(channel) {
    if (state.validatedAtMs !== null) return;
    if (!(state.sentPing && state.gotPong && state.sawPeerPing)) return;
    state.validatedAtMs = performance.now() - state.openAtMs;
    // As deployed peers do once validated: their pings start, and one text greeting goes out.
    channel.send(JSON.stringify({ type: "test", player: state.player }));
    setInterval(() => send(channel, timestamped(0x02, performance.now())), PING_INTERVAL_MS);
  }

  function onMessage(channel, data) {
    if (typeof data === "string") {
      state.texts += 1;
      return;
    }
    const dv = new DataView(data);
    const type = dv.getUint8(0);
    count(state.receivedByType, type);
    if (!KNOWN.has(type)) {
      state.lastUnknownAtMs = performance.now() - state.openAtMs;
      return;
    }
    if (type === 0x01) {
      const n = dv.getUint8(7);
      for (let i = 0; i < n; i++) {
        const frame = dv.getUint32(9 + 5 * i);
        const action = dv.getUint8(13 + 5 * i);
        if (frame in state.received) {
          state.duplicates += 1;
          continue;
        }
        state.received[frame] = action;
        if (action !== scriptedAction(state.peer, frame)) state.wrongActions += 1;
      }
    } else if (type === 0x02) {
      const echo = timestamped(0x03, dv.getFloat64(1));
      send(channel, echo);
    } else if (type === 0x03) {
      state.rtts.push(performance.now() - dv.getFloat64(1));
    } else if (type === 0x10) {
      state.sawPeerPing = true;
      send(channel, timestamped(0x11, dv.getFloat64(1)));
      checkValidated(channel);
    } else if (type === 0x11) {
      state.gotPong = true;
      checkValidated(channel);
    } else if (type === 0x05) {
      state.episodeEnds.push([dv.getUint32(1), dv.getUint32(5)]);
    } else if (type === 0x06) {
      const episode = dv.getUint32(1);
      const hash = new TextDecoder().decode(new Uint8Array(data, 5, 8));
      const first = !state.episodeReadies.some(([e]) => e === episode);
      state.episodeReadies.push([episode, hash]);
      if (first && episode in state.readySent) send(channel, episodeReady(episode, state.readySent[episode]));
    } else if (type === 0x07) {
      state.stateHashes.push([dv.getUint32(1), Array.from(new Uint8Array(data, 5, 8))]);
    } else if (type === 0x12) {
      send(channel, inputResponse(dv.getUint32(1), dv.getUint32(5)));
    }
  }

  function onOpen(channel, frames) {
    state.openAtMs = performance.now();
    state.channel = channel;
    setTimeout(() => {
      send(channel, timestamped(0x10, performance.now()));
      state.sentPing = true;
      checkValidated(channel);
    }, VALIDATION_DELAY_MS);
    const loop = setInterval(() => {
      if (state.framesSent >= frames) {
        clearInterval(loop);
        return;
      }
      send(channel, inputPacket(state.framesSent));
      state.framesSent += 1;
    }, FRAME_MS);
  }

  async function start({ room, iceServers, frames }) {
    if (state.started) throw new Error("started already");
    state.started = true;
    const socket = io({ transports: ["websocket"], forceNew: true });
    let pc = null;
    const pendingCandidates = [];
    socket.on("connect", () => socket.emit("join", { room }));
    socket.on("paired", ({ player_index, peer_index }) => {
      state.player = player_index;
      state.peer = peer_index;
      pc = new RTCPeerConnection({ iceServers });
      pc.onicecandidate = (e) => {
        if (e.candidate) socket.emit("webrtc_signal", { type: "ice-candidate", candidate: e.candidate.toJSON() });
      };
      pc.ondatachannel = (e) => {
        const channel = e.channel;
        if (channel.label !== "game") return;
        channel.binaryType = "arraybuffer";
        channel.onopen = () => onOpen(channel, frames);
        channel.onmessage = (m) => onMessage(channel, m.data);
      };
    });
    socket.on("webrtc_signal", async (message) => {
      if (message.type === "offer") {
        await pc.setRemoteDescription({ type: "offer", sdp: message.sdp });
        for (const c of pendingCandidates.splice(0)) await pc.addIceCandidate(c);
        const answer = await pc.createAnswer();
        await pc.setLocalDescription(answer);
        socket.emit("webrtc_signal", { type: "answer", sdp: pc.localDescription.sdp });
      } else if (message.type === "ice-candidate") {
        if (pc.remoteDescription) await pc.addIceCandidate(message.candidate);
        else pendingCandidates.push(message.candidate);
      }
    });
  }

  function report() {
    const frames = Object.keys(state.received).map(Number);
    return { ...state, received: undefined, channel: undefined, framesReceived: frames.length };
  }

  window.v1Peer = { start, report, sendEpisodeMessages };
})();
