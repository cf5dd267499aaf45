// The resilient-transcriber demo: one TranscriptionClient against the dev
// server, with its state, buffer and counters on screen and buttons that
// inject network faults through the dev server's /control API.
//
// Query parameters (all optional) preset the page, e.g.
//   /?provider=omi&engine=meter&staleAfterMs=3000&initialDelayMs=200
// provider, engine: the selectors; system=1 shares the system audio as a
// second channel; ptt=1 turns push-to-talk on; processing=1 turns the browser's voice
// processing on (off by default: recognisers prefer the raw signal, and
// Chromium's echo canceller, noise suppressor and AGC reshape it); the numeric ones map to client options
// (NUMERIC_OPTIONS below) so tests and demos can shorten the timeouts.
import init, { TranscriptionClient } from "/pkg/resilient_transcriber.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const wsBase = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}`;

const PROVIDERS = {
  deepgram: { path: "/v1/listen" },
  omi: { path: "/v4/web/listen", token: "demo-token" },
  generic: { path: "/v1/stream" },
};

// query parameter -> [option group or null, option name]
const NUMERIC_OPTIONS = {
  initialDelayMs: ["reconnect", "initialDelayMs"],
  maxDelayMs: ["reconnect", "maxDelayMs"],
  multiplier: ["reconnect", "multiplier"],
  jitter: ["reconnect", "jitter"],
  keepaliveMs: ["keepalive", "intervalMs"],
  staleAfterMs: ["watchdog", "staleAfterMs"],
  stallAfterMs: ["watchdog", "stallAfterMs"],
  ttlMs: ["buffer", "ttlMs"],
  maxBytes: ["buffer", "maxBytes"],
  replayRate: ["buffer", "replayRate"],
  connectTimeoutMs: [null, "connectTimeoutMs"],
  closeTimeoutMs: [null, "closeTimeoutMs"],
  chunkMs: [null, "chunkMs"],
  seed: [null, "seed"],
};

const STATS_SHOWN = [
  ["chunksSent", "chunks sent"], ["bytesSent", "bytes sent"], ["chunksReplayed", "chunks replayed"],
  ["chunksQueued", "chunks queued"], ["chunksDropped", "chunks dropped"], ["attempts", "connect attempts"],
  ["reconnects", "reconnects"], ["keepalivesSent", "keepalives sent"], ["messagesReceived", "messages received"],
  ["transcripts", "transcripts"], ["bufferedAmount", "socket buffered bytes"],
];

/** State shared with tests (Playwright reads it): window.rtDemo. */
const demo = {
  TranscriptionClient,
  client: null,
  droppedMs: 0,
  dropped: [],
  events: [],
  states: [],
  transcripts: [],
  utterances: [],
  options: null,
  start,
  stop,
  fault,
};
window.rtDemo = demo;

// ---- options -------------------------------------------------------------

function selectFromQuery(select, name) {
  const v = params.get(name);
  if (v && [...select.options].some((o) => o.value === v)) select.value = v;
  select.addEventListener("change", () => {
    params.set(name, select.value);
    history.replaceState(null, "", `?${params}`);
    showEndpoint();
  });
}

function clientOptions() {
  const provider = $("provider").value;
  const p = PROVIDERS[provider];
  const url = new URL(wsBase + p.path);
  url.searchParams.set("engine", $("engine").value);
  const options = { url: url.toString(), provider };
  if (p.token) options.token = p.token;
  // Omi's endpoint takes one channel: there the system audio is mixed in.
  if ($("system-audio").checked && provider !== "omi") options.channels = 2;
  if ($("ptt").checked) options.pushToTalk = true;
  for (const [key, [group, name]] of Object.entries(NUMERIC_OPTIONS)) {
    if (!params.has(key)) continue;
    const n = Number(params.get(key));
    if (group) (options[group] ??= {})[name] = n;
    else options[name] = n;
  }
  return options;
}

function showEndpoint() {
  $("endpoint").textContent = `Endpoint: ${clientOptions().url}`;
}

// ---- connection indicator -------------------------------------------------

const indicator = { state: "idle", attempt: 0, retryAt: 0, reason: null };

function renderIndicator() {
  const el = $("indicator");
  const text = $("indicator-text");
  const { state, attempt, reason } = indicator;
  el.dataset.state = state;
  el.title = reason ?? "";
  switch (state) {
    case "reconnecting": {
      const secs = Math.max(0, Math.ceil((indicator.retryAt - performance.now()) / 1000));
      // The countdown itself is aria-hidden so screen readers hear the
      // state change once, not every second.
      text.innerHTML = "";
      text.append("reconnecting in ");
      const n = document.createElement("span");
      n.className = "countdown";
      n.setAttribute("aria-hidden", "true");
      n.textContent = `${secs} s`;
      text.append(n, `, attempt ${attempt}`);
      break;
    }
    case "open": text.textContent = "connected"; break;
    case "connecting":
    case "authenticating":
      text.textContent = attempt > 0 ? `${state}, attempt ${attempt}` : `${state}…`;
      break;
    case "failed": text.textContent = `failed: ${reason ?? "unknown reason"}`; break;
    default: text.textContent = state;
  }
}

function onState(s) {
  indicator.state = s.state;
  indicator.attempt = s.attempt;
  indicator.reason = s.reason;
  indicator.retryAt = performance.now() + (s.retryInMs ?? 0);
  renderIndicator();
}

function tickCountdown() {
  if (indicator.state !== "reconnecting") return;
  const el = $("indicator-text").querySelector(".countdown");
  const secs = Math.max(0, Math.ceil((indicator.retryAt - performance.now()) / 1000));
  if (el && el.textContent !== `${secs} s`) el.textContent = `${secs} s`;
}

// ---- transcript -------------------------------------------------------------

function onTranscript(t) {
  const box = $("transcript");
  box.querySelector(".placeholder")?.remove();
  let line = box.querySelector("p.interim");
  if (t.isFinal) {
    if (!t.text.trim()) { line?.remove(); return; }
    line ??= box.appendChild(document.createElement("p"));
    line.className = "final";
  } else {
    if (!t.text.trim()) return;
    line ??= box.appendChild(document.createElement("p"));
    line.className = "interim";
  }
  line.textContent = t.text;
  box.scrollTop = box.scrollHeight;
}

// ---- counters and buffer gauge ------------------------------------------------

function renderStats() {
  const c = demo.client ?? demo.lastClient;
  if (!c) return;
  const s = c.stats();
  $("queued-ms").textContent = Math.round(s.audioMsQueued);
  $("gauge").value = s.audioMsQueued;
  const dl = $("stats");
  if (!dl.childElementCount) {
    for (const [key, label] of STATS_SHOWN) {
      const dt = document.createElement("dt");
      dt.textContent = label;
      const dd = document.createElement("dd");
      dd.dataset.stat = key;
      dl.append(dt, dd);
    }
  }
  for (const dd of dl.querySelectorAll("dd")) dd.textContent = s[dd.dataset.stat].toLocaleString("en");
}

function onDropped(d) {
  demo.droppedMs += d.audioMs;
  demo.dropped.push(d);
  $("dropped-ms").textContent = Math.round(demo.droppedMs);
  const byReason = {};
  for (const x of demo.dropped) byReason[x.reason] = (byReason[x.reason] ?? 0) + x.audioMs;
  $("dropped-detail").textContent = `(${Object.entries(byReason).map(([r, ms]) => `${r}: ${Math.round(ms)} ms`).join(", ")})`;
}

// ---- event log ---------------------------------------------------------------

function log(type, payload) {
  demo.events.push({ t: Math.round(performance.now()), type, payload });
  const li = document.createElement("li");
  li.textContent = `${new Date().toLocaleTimeString("en-GB")} ${type} ${payload === undefined ? "" : JSON.stringify(payload)}`;
  const ol = $("log");
  ol.prepend(li);
  while (ol.childElementCount > 100) ol.lastElementChild.remove();
}

// ---- start / stop ---------------------------------------------------------------

function setRunning(running) {
  $("start").disabled = running;
  $("stop").disabled = !running;
  $("provider").disabled = running;
  $("engine").disabled = running;
  $("processing").disabled = running;
  $("system-audio").disabled = running;
  $("ptt").disabled = running;
  $("talk").disabled = !(running && $("ptt").checked);
  if (!running) talkUp();
}

// ---- push-to-talk ----------------------------------------------------------

let talking = false;

function talkDown() {
  const c = demo.client;
  if (!c || talking || !$("ptt").checked) return;
  try {
    c.beginUtterance();
  } catch (e) {
    log("beginUtterance failed", { code: e.code, message: e.message });
    return;
  }
  talking = true;
  $("talk").setAttribute("aria-pressed", "true");
}

function talkUp() {
  const c = demo.client;
  if (!talking) return;
  talking = false;
  $("talk").setAttribute("aria-pressed", "false");
  if (!c) return;
  c.endUtterance().then(showUtterance, (e) => log("endUtterance rejected", { code: e.code, message: e.message }));
}

function showUtterance(u) {
  demo.utterances.push(u);
  $("utterances-panel").hidden = false;
  const li = document.createElement("li");
  const how = u.timedOut ? "timed out, partial" : `${u.latencyMs} ms after release`;
  li.textContent = `#${u.id} (${(u.audioMs / 1000).toFixed(1)} s, ${how}): ${u.text || "(no words)"}`;
  $("utterances").prepend(li);
}

async function start() {
  if (demo.client) return;
  const options = clientOptions();
  const client = new TranscriptionClient(options);
  Object.assign(demo, { client, options, droppedMs: 0, dropped: [], states: [], transcripts: [] });
  $("dropped-ms").textContent = "0";
  $("dropped-detail").textContent = "";
  $("ttl-ms").textContent = options.buffer?.ttlMs ?? 30000;
  $("gauge").max = options.buffer?.ttlMs ?? 30000;
  $("transcript").replaceChildren();
  client.on("state", (s) => {
    demo.states.push(s);
    onState(s);
    log("state", s);
    if ((s.state === "closed" || s.state === "failed") && demo.client === client) {
      demo.client = null;
      demo.lastClient = client;
      setRunning(false);
    }
  });
  client.on("transcript", (t) => { demo.transcripts.push(t); onTranscript(t); if (t.isFinal && t.text.trim()) log("final", t.text); });
  client.on("dropped", (d) => { onDropped(d); log("dropped", d); });
  client.on("error", (e) => log("error", { code: e.code, message: e.message, fatal: e.fatal }));
  client.on("open", (o) => log("open", o));
  client.on("close", (c) => log("close", { code: c.code, reason: c.reason, state: c.state }));
  setRunning(true);
  // Not awaited: readiness may take a while (server down), and audio is
  // queued from the first sample, so the microphone starts right away.
  client.connect().catch((e) => log("connect rejected", { code: e.code, message: e.message }));
  client.on("capture", (e) => log("capture", e));
  try {
    const processing = $("processing").checked;
    const microphone = { echoCancellation: processing, noiseSuppression: processing, autoGainControl: processing };
    // The browser asks which tab or screen to share (with its audio).
    await client.startCapture({ microphone, systemAudio: $("system-audio").checked });
    log("capture", "running");
  } catch (e) {
    log("capture failed", { code: e.code, message: e.message });
  }
}

async function stop() {
  const client = demo.client;
  if (!client) return demo.lastSummary;
  $("stop").disabled = true;
  // Delivers the samples still in the worklet, then flushes the queue,
  // finalizes and awaits the final transcripts.
  await client.stopMicrophone();
  const summary = await client.close({ flush: true });
  renderStats();
  demo.client = null;
  demo.lastSummary = summary;
  demo.lastClient = client;
  setRunning(false);
  return summary;
}

async function fault(name, body = {}) {
  const status = $("fault-status");
  try {
    const r = await fetch(`/control/${name}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const json = await r.json();
    status.textContent = r.ok ? `${name}: ok` : `${name}: ${json.error}`;
    log("fault", { name, body, status: r.status });
    return json;
  } catch (e) {
    status.textContent = `${name}: ${e.message}`;
    throw e;
  }
}

// ---- boot --------------------------------------------------------------------------

selectFromQuery($("provider"), "provider");
selectFromQuery($("engine"), "engine");
$("processing").checked = params.get("processing") === "1";
$("system-audio").checked = params.get("system") === "1";
$("ptt").checked = params.get("ptt") === "1";
for (const [id, key] of [["system-audio", "system"], ["ptt", "ptt"]]) {
  $(id).addEventListener("change", () => {
    params.set(key, $(id).checked ? "1" : "0");
    history.replaceState(null, "", `?${params}`);
  });
}
const talk = $("talk");
talk.addEventListener("pointerdown", (e) => { talk.setPointerCapture?.(e.pointerId); talkDown(); });
talk.addEventListener("pointerup", talkUp);
talk.addEventListener("pointercancel", talkUp);
// The space bar, outside form fields; held keys repeat, so only the first counts.
const typing = (e) => e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement || e.target instanceof HTMLTextAreaElement;
addEventListener("keydown", (e) => {
  if (e.code !== "Space" || typing(e) || !demo.client || !$("ptt").checked) return;
  e.preventDefault();
  if (!e.repeat) talkDown();
});
addEventListener("keyup", (e) => { if (e.code === "Space" && talking) { e.preventDefault(); talkUp(); } });
addEventListener("blur", talkUp);
$("processing").addEventListener("change", () => {
  params.set("processing", $("processing").checked ? "1" : "0");
  history.replaceState(null, "", `?${params}`);
});
showEndpoint();
$("start").addEventListener("click", () => start().catch((e) => {
  // Bad options (e.g. from the query string) throw in the constructor.
  log("start failed", String(e));
  onState({ state: "failed", attempt: 0, retryInMs: null, reason: e.message });
}));
$("stop").addEventListener("click", () => stop().catch((e) => log("stop failed", String(e))));
for (const b of document.querySelectorAll("[data-fault]")) {
  b.addEventListener("click", () => fault(b.dataset.fault, JSON.parse(b.dataset.body)).catch(() => {}));
}
$("start").disabled = true;
await init();
$("start").disabled = false;
setInterval(renderStats, 250);
setInterval(tickCountdown, 200);
document.documentElement.dataset.ready = "true";
