// The browser shell's JavaScript side: a few functions that each do one
// browser operation that belongs together (see src/web/js.rs, which binds
// them). They decide nothing; everything they hear goes back to Rust
// through one sink per client: sink(kind, id, data, n), kinds in js.rs.
let LISTENERS = 0, TIMERS = 0;
export function rt_live() { return LISTENERS; }
export function rt_timers() { return TIMERS; }
export function rt_now() { return globalThis.performance ? performance.now() : Date.now(); }
export function rt_wall() { return Date.now(); }

// A sink that can be switched off when its client is freed, so a late
// promise or event never reaches a dropped Rust closure.
export function rt_sink(f) { const s = (k, i, d, n) => { if (s.f) s.f(k, i, d, n); }; s.f = f; return s; }
export function rt_sink_off(s) { s.f = null; }

// Options as JSON; what JSON cannot carry becomes a {"$rt": kind} marker.
const MARK = (k, v) => typeof v === "function" ? { $rt: "function" }
  : typeof v === "number" && !Number.isFinite(v) ? { $rt: String(v) }
  : typeof v === "bigint" ? { $rt: "bigint" } : typeof v === "symbol" ? { $rt: "symbol" }
  : typeof MediaStream !== "undefined" && v instanceof MediaStream ? { $rt: "MediaStream" } : v;
export function rt_json(o) { try { return JSON.stringify({ v: o }, MARK); } catch (e) { return "!"; } }
export function rt_get(o, k) { return o == null ? undefined : o[k]; }
export function rt_parse(json) { return JSON.parse(json); }
export function rt_err(kind, code, field, message) {
  const e = new (kind === 1 ? RangeError : kind === 2 ? TypeError : Error)(message);
  e.code = code;
  if (field) e.field = field;
  return e;
}
export function rt_len(x) { return x.length; }
export function rt_copy(src, dst) { dst.set(src); }
export function rt_kind(x) {
  return x instanceof Int16Array ? 1 : x instanceof Float32Array ? 2 : x instanceof ArrayBuffer ? 3 : 0;
}
export function rt_show(v) {
  if (typeof v === "string") return JSON.stringify(v.slice(0, 40));
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "function") return "a function";
  if (typeof v === "object") return v.constructor && v.constructor.name ? `a ${v.constructor.name}` : "an object";
  return String(v);
}

// Listeners: a plain object of Sets, kept in JS so `on` returns a plain
// unsubscribe function and a throwing listener becomes an `error` event.
export function rt_listen(ls, method, type, fn, valid) {
  const types = valid.split(",");
  if (typeof type !== "string" || !types.includes(type)) {
    throw rt_err(2, "invalid-argument", "type", typeof type === "string"
      ? `${method}(type, listener): unknown event type "${type}"; valid types: ${types.join(", ")}`
      : `${method}(type, listener): type must be one of ${types.join(", ")}; got ${rt_show(type)}`);
  }
  if (typeof fn !== "function") {
    throw rt_err(2, "invalid-argument", "listener", `${method}("${type}", listener): listener must be a function, got ${rt_show(fn)}`);
  }
  const set = ls[type] || (ls[type] = new Set());
  if (method === "off") {
    for (const f of [...set]) if (f === fn || f.rtOriginal === fn) set.delete(f);
    return undefined;
  }
  let w = fn;
  if (method === "once") {
    w = function (e) { set.delete(w); return fn.call(this, e); };
    w.rtOriginal = fn;
  }
  set.add(w);
  return () => { set.delete(w); };
}
function emit(ls, type, payload) {
  const set = ls[type];
  if (!set) return;
  for (const f of [...set]) {
    try { f(payload); } catch (e) {
      const message = `a "${type}" listener threw: ${e && e.message ? e.message : String(e)}`;
      if (type === "error") console.error(message, e);
      else emit(ls, "error", { code: "listener", message, fatal: false, cause: e });
    }
  }
}
export function rt_emit(ls, type, json) { if (ls[type] && ls[type].size) emit(ls, type, JSON.parse(json)); }

// A diagnostics entry: to the `logger` option, or the console. A logger
// that throws is reported on the console once, never to the client.
export function rt_log(logger, level, json) {
  const entry = JSON.parse(json);
  if (typeof logger === "function") {
    try { logger(entry); } catch (e) { if (!logger.rtThrew) { logger.rtThrew = true; console.error("resilient-transcriber: the logger threw", e); } }
    return;
  }
  const c = globalThis.console;
  (c[level] || c.log).call(c, `[resilient-transcriber] ${entry.event}`, entry);
}

// One WebSocket and its four listeners; rt_ws_close removes them first.
export function rt_ws_open(url, protocols, id, sink) {
  let ws;
  try { ws = protocols.length ? new WebSocket(url, protocols) : new WebSocket(url); }
  catch (e) { return (e && e.name) || "Error"; }  // never the message: it holds the URL
  ws.binaryType = "arraybuffer";
  const on = {
    open: () => sink(0, id, undefined, 0),
    message: (e) => typeof e.data === "string" ? sink(1, id, e.data, 0) : sink(2, id, new Uint8Array(e.data), 0),
    close: (e) => sink(3, id, e.reason, e.code),
    error: () => sink(4, id, undefined, 0),
  };
  for (const k in on) ws.addEventListener(k, on[k]);
  LISTENERS += 4;
  ws.rtOff = () => { for (const k in on) ws.removeEventListener(k, on[k]); LISTENERS -= 4; ws.rtOff = null; };
  return ws;
}
// Only an OPEN socket is written to: once the server's close frame arrived
// (CLOSING) the browser would discard the data (Chromium logs "WebSocket is
// already in CLOSING or CLOSED state"); the core keeps it unconfirmed and
// the close event that follows decides whether it is resent or reported.
export function rt_ws_send(ws, data) {
  if (ws.readyState !== 1) return false;
  try { ws.send(data); return true; } catch (e) { return false; }
}
export function rt_ws_buffered(ws) { return ws.bufferedAmount; }
export function rt_ws_close(ws, code, reason) {
  if (ws.rtOff) ws.rtOff();
  try { ws.close(code, reason); } catch (e) { /* already closing */ }
}

// The driver's one timer.
export function rt_timer(ms, sink) {
  const t = {};
  TIMERS++;
  t.h = setTimeout(() => { t.h = 0; TIMERS--; sink(5, 0, undefined, 0); }, ms);
  return t;
}
export function rt_timer_clear(t) { if (t.h) { clearTimeout(t.h); t.h = 0; TIMERS--; } }

// Page lifecycle: online/offline, visibility, freeze/resume, bfcache.
export function rt_lifecycle(sink) {
  const w = globalThis, d = w.document, on = [];
  const add = (t, type, f) => { t.addEventListener(type, f); on.push([t, type, f]); LISTENERS++; };
  if (w.addEventListener) {
    add(w, "online", () => sink(6, 0, undefined, 0));
    add(w, "offline", () => sink(7, 0, undefined, 0));
    add(w, "pagehide", () => sink(9, 0, undefined, 0));
    add(w, "pageshow", () => sink(10, 0, undefined, 0));
  }
  if (d) {
    add(d, "visibilitychange", () => sink(d.visibilityState === "hidden" ? 8 : 10, 0, undefined, 0));
    add(d, "freeze", () => sink(9, 0, undefined, 0));
    add(d, "resume", () => sink(10, 0, undefined, 0));
  }
  return () => { for (const [t, type, f] of on) t.removeEventListener(type, f); LISTENERS -= on.length; on.length = 0; };
}

// getToken: its answer (a credential, as JSON) or its failure, tagged.
export function rt_token(fn, req, sink) {
  let p;
  try { p = Promise.resolve(fn()); } catch (e) { p = Promise.reject(e); }
  p.then((v) => sink(11, req, rt_json(v), 1), (e) => sink(11, req, e && e.message ? String(e.message) : String(e), 0));
}

// Capture: the sources (getUserMedia for the microphone, getDisplayMedia
// or a given MediaStream for the system audio) → one AudioContext → the
// worklet (below, loaded from a Blob URL unless `url` is given) → ready.
// With two channels a ChannelMerger puts the microphone on channel 0 and
// the system audio on 1, so they stay sample-aligned; with one, both
// sources sum into it. A source whose track ends leaves its channel
// silent. The worklet batches 128-frame quanta into ~20 ms (interleaved
// frames) and transfers them; "flush" asks for what it holds.
const WORKLET = `class RtCapture extends AudioWorkletProcessor {
  constructor(o) { super(); this.ch = (o && o.processorOptions && o.processorOptions.channels) || 1;
    this.size = Math.max(128, Math.round(sampleRate * 0.02 / 128) * 128) * this.ch;
    this.buf = new Float32Array(this.size); this.n = 0;
    this.port.onmessage = (e) => { if (e.data === "flush") this.flush(); }; }
  post(last) { const out = this.buf.slice(0, this.n); this.port.postMessage({ samples: out, sampleRate, last }, [out.buffer]); this.n = 0; }
  flush() { this.post(true); }
  process(inputs) { const input = inputs[0], c = this.ch, first = input && input[0];
    if (first) { const len = first.length;
      if (c === 1) this.buf.set(first, this.n);
      else for (let k = 0; k < c; k++) { const x = input[k]; let j = this.n + k;
        if (x) for (let i = 0; i < len; i++, j += c) this.buf[j] = x[i]; else for (let i = 0; i < len; i++, j += c) this.buf[j] = 0; }
      this.n += len * c;
      if (this.n + 128 * c > this.size) this.post(false); }
    return true; } }
registerProcessor("rt-capture", RtCapture);`;
export function rt_worklet_source() { return WORKLET; }
const NAMES = ["microphone", "systemAudio"];
// `mic`: getUserMedia audio constraints as JSON, or "" for none; `given`:
// the startCapture options object (for the MediaStreams in it); `system`:
// 0 none, 1 ask the browser, 2 the given MediaStream.
export function rt_capture(mic, given, system, url, rate, channels, gen, sink) {
  const cap = { on: [], closed: false, streams: [], given: [] };
  const fail = (code, what, e) => { rt_capture_close(cap); sink(13, gen, { name: code, message: `${what}${e && e.message ? `: ${e.message}` : ""}` }, 0); };
  const md = globalThis.navigator && navigator.mediaDevices;
  const micGiven = !!(given && typeof MediaStream !== "undefined" && given.microphone instanceof MediaStream);
  cap.given = [micGiven, system === 2];
  if ((mic && !micGiven && !(md && md.getUserMedia)) || (system === 1 && !(md && md.getDisplayMedia))) {
    fail("NotSupportedError", system === 1 && !(md && md.getDisplayMedia)
      ? "navigator.mediaDevices.getDisplayMedia is unavailable (this browser cannot share a tab or screen; pass systemAudio a MediaStream)"
      : "navigator.mediaDevices is unavailable (is the page served over https or localhost?)");
    return cap;
  }
  // Released before it was running (a later start, a stop, close()):
  // the outcome is still reported, so the promise of that start settles.
  const superseded = () => { rt_capture_close(cap); sink(13, gen, { name: "superseded", message: "" }, 0); };
  const named = (which) => (e) => { const n = (e && e.name) || "Error"; const err = new Error(`${which}: ${n}: ${e && e.message ? e.message : String(e)}`); err.name = which === "microphone" ? n : `system-${n}`; throw err; };
  const getMic = micGiven ? Promise.resolve(given.microphone)
    : mic ? md.getUserMedia({ audio: JSON.parse(mic) }).catch(named("microphone")) : Promise.resolve(null);
  const getSys = system === 2 ? Promise.resolve(given.systemAudio)
    : system === 1 ? md.getDisplayMedia({ audio: true, video: true }).catch(named("system audio")) : Promise.resolve(null);
  const sysAudio = getSys.then((s) => {
    if (s && system === 1) {
      // Only the audio is wanted; a tab or screen shared without its audio is an error.
      for (const t of s.getVideoTracks()) t.stop();
      if (!s.getAudioTracks().length) {
        for (const t of s.getTracks()) t.stop();
        const e = new Error("system audio: the shared tab or screen carries no audio (tick \"Share audio\" in the picker)");
        e.name = "system-NotFoundError";
        throw e;
      }
    }
    return s;
  });
  // Both answers are awaited: when one source fails, the other's tracks
  // (if the browser opened them) are stopped, not left running.
  Promise.allSettled([getMic, sysAudio]).then((r) => {
    const bad = r.find((x) => x.status === "rejected");
    if (!bad) return r.map((x) => x.value);
    r.forEach((x, i) => { if (x.status === "fulfilled" && x.value && !cap.given[i]) for (const t of x.value.getTracks()) t.stop(); });
    throw bad.reason;
  }).then(async ([m, s]) => {
    cap.streams = [m, s];
    if (cap.closed) return superseded();
    try { cap.ctx = new AudioContext(rate ? { sampleRate: rate } : {}); }
    catch (e) { return fail("audio-context", "AudioContext", e); }
    const src = url || URL.createObjectURL(new Blob([WORKLET], { type: "text/javascript" }));
    try { await cap.ctx.audioWorklet.addModule(src); }
    catch (e) { return fail("audio-context", "loading the AudioWorklet (set `workletUrl` if a Content-Security-Policy forbids blob:)", e); }
    finally { if (!url) URL.revokeObjectURL(src); }
    if (cap.closed) return superseded();
    try {
      cap.node = new AudioWorkletNode(cap.ctx, "rt-capture", { numberOfInputs: 1, numberOfOutputs: 1, channelCount: channels,
        channelCountMode: "explicit", channelInterpretation: channels > 1 ? "discrete" : "speakers", processorOptions: { channels } });
      // Every MediaStreamAudioSourceNode bridges its track into the context
      // through a FIFO of its own, which Chromium resyncs on its own (a block
      // dropped or repeated under load): the same tracks given as both
      // sources get one node, feeding both channels, so they stay identical.
      const ids = (st) => st.getAudioTracks().map((t) => t.id).sort().join(" ");
      const same = !!(m && s && ids(m) === ids(s));
      cap.sources = [m, same ? null : s].map((st) => st && cap.ctx.createMediaStreamSource(st));
      let into = cap.node;
      if (channels > 1) { cap.merger = cap.ctx.createChannelMerger(channels); cap.merger.connect(cap.node); into = cap.merger; }
      cap.sources.forEach((sn, i) => { if (sn) { if (channels > 1) sn.connect(into, 0, i); else sn.connect(into); } });
      if (same && channels > 1) cap.sources[0].connect(into, 0, 1);
      // The processor writes silence; connecting it keeps the graph pulled.
      cap.node.connect(cap.ctx.destination);
    } catch (e) { return fail("audio-context", "building the capture graph", e); }
    const add = (t, type, f) => { t.addEventListener(type, f); cap.on.push([t, type, f]); LISTENERS++; };
    add(cap.node.port, "message", (e) => { const d = e.data; if (d && d.samples) sink(d.last ? 15 : 14, gen, d.samples, d.sampleRate); });
    cap.node.port.start();
    [m, s].forEach((st, i) => {
      if (!st) return;
      // A source has ended when every one of its audio tracks has.
      const tracks = st.getAudioTracks();
      for (const t of tracks) add(t, "ended", () => { if (tracks.every((x) => x.readyState === "ended")) sink(16, gen, NAMES[i], 0); });
    });
    sink(12, gen, cap, 0);
    if (cap.ctx.state === "suspended") {
      // Autoplay policy: resume on the next user gesture.
      cap.ctx.resume();
      for (const type of ["pointerdown", "keydown", "touchend"]) {
        add(globalThis, type, () => { if (cap.ctx.state === "suspended") cap.ctx.resume(); });
      }
      sink(18, gen, undefined, 0);
    }
  }, (e) => { rt_capture_close(cap); sink(13, gen, { name: (e && e.name) || "Error", message: e && e.message ? String(e.message) : String(e) }, 0); });
  return cap;
}
// Stops the input and asks the worklet for what it holds; if no answer
// comes within `grace` ms (a suspended context never answers), MIC_FINISH.
// Streams the host gave are the host's: their tracks are left running.
const ownTracks = (cap) => cap.streams.filter((st, i) => st && !(cap.given && cap.given[i])).flatMap((st) => st.getTracks());
export function rt_capture_stop(cap, grace, gen, sink) {
  for (const t of ownTracks(cap)) t.stop();
  if (cap.node) cap.node.port.postMessage("flush");
  if (!cap.grace) cap.grace = rt_timer(grace, () => sink(17, gen, undefined, 0));
}
export function rt_capture_close(cap) {
  cap.closed = true;
  if (cap.grace) { rt_timer_clear(cap.grace); cap.grace = null; }
  for (const [t, type, f] of cap.on) t.removeEventListener(type, f);
  LISTENERS -= cap.on.length; cap.on = [];
  try {
    if (cap.node) { cap.node.port.close(); cap.node.disconnect(); }
    if (cap.merger) cap.merger.disconnect();
    for (const sn of cap.sources || []) if (sn) sn.disconnect();
  } catch (e) { /* gone */ }
  for (const t of ownTracks(cap)) t.stop();
  if (cap.ctx && cap.ctx.state !== "closed") cap.ctx.close().catch(() => {});
}
