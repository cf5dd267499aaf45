// Compiled with `tsc --noEmit` by `npm test`: proves the generated typings
// are precise and usable. Lines marked @ts-expect-error MUST fail to type-check.
import init, { TranscriptionClient } from "../../pkg/resilient_transcriber.js";
import type {
  CloseSummary, StateEvent, TranscriptionState, ClientError, ErrorCode,
} from "../../pkg/resilient_transcriber.js";

export async function demo(): Promise<void> {
  await init();
  const client = new TranscriptionClient({
    url: "wss://example.com/v1/listen",
    provider: "deepgram",
    getToken: async () => ({ token: "eyJ.x.y", scheme: "bearer" }),
    watchdog: { staleAfterMs: 5_000 },
    reconnect: { initialDelayMs: 500, maxDelayMs: 60_000, maxAttempts: Infinity },
    buffer: { ttlMs: 30_000, maxBytes: 960_000, replayRate: 4 },
  });
  const off: () => void = client.on("transcript", (t) => {
    const text: string = t.text;
    const final: boolean = t.isFinal;
    console.log(text, final, t.start, t.end, t.speaker);
  });
  client.on("state", (s: StateEvent) => {
    const state: TranscriptionState = s.state;
    const retry: number | null = s.retryInMs;
    console.log(state, retry, s.attempt);
  });
  client.once("dropped", (d) => {
    const reason: "ttl" | "capacity" | "closed" | "failed" | "unconfirmed" | "format" = d.reason;
    console.log(reason, d.audioMs);
  });
  client.on("error", (e) => {
    const code: ErrorCode = e.code;
    // @ts-expect-error: error codes are a union, not any string
    const wrong: typeof e.code = "no-such-code";
    console.log(code, wrong, e.fatal);
  });
  client.on("transcript", (t) => t.words.map((w) => w.word + w.start));
  client.on("reconnecting", (r) => console.log(r.attempt, r.delayMs));
  client.on("close", (c) => console.log(c.code, c.stats.bytesSent));
  // @ts-expect-error: unknown event types are rejected by the types too
  client.on("transcripts", () => {});
  // @ts-expect-error: a transcript has no `delayMs`
  client.on("transcript", (t) => t.delayMs);
  try {
    await client.connect();
  } catch (e) {
    const err = e as ClientError;
    console.log(err.code, err.field);
  }
  client.sendAudio(new Int16Array(1600));
  client.sendAudio(new Float32Array(4800), 48_000);
  // @ts-expect-error: plain arrays are not audio
  client.sendAudio([1, 2, 3]);
  await client.startMicrophone({ echoCancellation: true });
  await client.stopMicrophone();
  const capturing: boolean = client.capturing;
  // Two channels and push-to-talk (issue 14).
  const ptt = new TranscriptionClient({
    url: "wss://example.com/v1/listen",
    channels: 2,
    pushToTalk: { preRollMs: 300, timeoutMs: 3000, connection: "onDemand" },
  });
  // @ts-expect-error: three channels are not a stream this client sends
  new TranscriptionClient({ url: "wss://x/", channels: 3 });
  // @ts-expect-error: the connection is "warm" or "onDemand"
  new TranscriptionClient({ url: "wss://x/", pushToTalk: { connection: "lazy" } });
  const shared = new MediaStream();
  await ptt.startCapture({ microphone: { deviceId: "d" }, systemAudio: shared });
  await ptt.startCapture({ microphone: false, systemAudio: true });
  ptt.on("capture", (c) => console.log(c.source === "systemAudio", c.state));
  const id: number = ptt.beginUtterance({ preRollMs: 200 });
  const u = await ptt.endUtterance();
  const words: string = u.text + u.finals.map((f) => f.channel).join() + id;
  console.log(words, u.latencyMs, u.timedOut, u.startMs, u.endMs, u.audioMs);
  ptt.on("utterance", (r) => console.log(r.id, r.text));
  const standby: TranscriptionState = "standby";
  console.log(standby, ptt.stats().audioMsGated);
  await ptt.stopCapture();
  // Diagnostics (issue 11).
  const logged = new TranscriptionClient({ url: "wss://x/", logLevel: "warn", logger: (e) => console.log(e.level, e.event, e.atMs, e.data) });
  const snap = logged.diagnostics();
  const last: number | null = snap.timings.lastConnectMs;
  console.log(snap.version, snap.closes.map((c) => c.code), snap.transitions[snap.transitions.length - 1]?.reason, last, snap.stats.bytesSent);
  // @ts-expect-error: not a level
  new TranscriptionClient({ url: "wss://x/", logLevel: "verbose" });
  const summary: CloseSummary = await client.close({ flush: true, timeoutMs: 5000 });
  console.log(summary.reason, capturing, client.stats().bytesDropped, client.state);
  await client.close();
  off();
  client.free();
}
