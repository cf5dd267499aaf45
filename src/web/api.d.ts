// The declarations wasm-bindgen cannot derive from the Rust signatures
// (options, event payloads, the per-event `on` overloads); source:
// src/web/api.d.ts, embedded by src/web/api.rs.

/** Connection state, as `client.state` and `state` events report it. */
export type TranscriptionState =
  | "idle" | "connecting" | "authenticating" | "open" | "standby" | "offline"
  | "reconnecting" | "closing" | "closed" | "failed";

/** A credential: an API key (the `token` scheme, `Sec-WebSocket-Protocol: token, K`), or a short-lived access token with its scheme (Deepgram's token-grant JWTs use `bearer`). */
export type TranscriptionCredential = string | { token: string; scheme?: "token" | "bearer" };

/** Stable codes of `error` events and of errors thrown or rejected by the client. */
export type ErrorCode =
  | "auth-failed" | "bad-audio" | "fatal-close" | "max-attempts"
  | "connect-timeout" | "token-failed" | "malformed-message" | "server-error" | "listener"
  | "mic-permission" | "mic-unavailable" | "mic-ended" | "mic-active" | "mic-superseded"
  | "system-audio-permission" | "system-audio-unavailable" | "system-audio-ended"
  | "audio-suspended" | "audio-context" | "audio-format"
  | "closed" | "freed" | "usage" | "invalid-argument";

/** Options of `new TranscriptionClient(options)`. Every field is checked; a bad one throws a TypeError or RangeError naming it. */
export interface TranscriptionClientOptions {
  /** ws:// or wss:// URL of the backend endpoint. */
  url: string;
  /** Wire protocol; default "deepgram". */
  provider?: "deepgram" | "omi" | "generic";
  /** Extra WebSocket subprotocols. */
  protocols?: string[];
  /** A static credential (Deepgram/generic: sent as subprotocols [scheme, T]; Omi: first-message auth). */
  token?: TranscriptionCredential;
  /** Called before every (re)connect; its credential replaces `token`. A rejection counts as a failed attempt. */
  getToken?: () => TranscriptionCredential | Promise<TranscriptionCredential>;
  /** Language passed to the backend. */
  language?: string;
  /** Target sample rate of the PCM16 stream; default 16000. */
  sampleRate?: number;
  /** Interleaved channels of the stream: 2 carries the microphone (0) and the system audio (1); default 1. Omi takes 1. */
  channels?: 1 | 2;
  /**
   * Push-to-talk: audio reaches the stream only between beginUtterance() and endUtterance(), plus the pre-roll.
   * `connection`: "warm" (default) keeps the connection open between utterances; "onDemand" closes it once
   * everything is confirmed (state "standby") and beginUtterance() opens the next (not with Omi, which has no flush).
   */
  pushToTalk?: boolean | {
    /** Audio kept from before beginUtterance(); default 300. */ preRollMs?: number;
    /** endUtterance() resolves with what arrived by then after its audio is sent; default 3000. */ timeoutMs?: number;
    connection?: "warm" | "onDemand";
  };
  /** Chunk length in ms; default 100. */
  chunkMs?: number;
  reconnect?: {
    /** Default 500. */ initialDelayMs?: number;
    /** Cap on any delay; default 60000. */ maxDelayMs?: number;
    /** Default 2. */ multiplier?: number;
    /** Fraction of each delay drawn at random, 0..1; default 0.5. */ jitter?: number;
    /** Consecutive failed attempts before giving up; default Infinity. */ maxAttempts?: number;
    /** The attempt counter resets after a connection stayed open this long; default 10000. */ resetAfterMs?: number;
  };
  keepalive?: { /** Default: min(5000, watchdog.staleAfterMs / 3). */ intervalMs?: number };
  watchdog?: {
    /** No frame from the server for this long while one is expected: reconnect. Default 25000. */ staleAfterMs?: number;
    /** bufferedAmount not draining for this long: reconnect. Default 10000. */ stallAfterMs?: number;
  };
  buffer?: {
    /** Queued audio older than this is dropped (and reported). Default 30000. */ ttlMs?: number;
    /** Cap on queued bytes. Default 960000. */ maxBytes?: number;
    /** Backlog replay speed, × real time. Default 4. */ replayRate?: number;
  };
  /** An attempt not ready by then fails; default 10000. */
  connectTimeoutMs?: number;
  /** Bound on a graceful close; default 5000. */
  closeTimeoutMs?: number;
  /** Seed of the jitter RNG (tests); default random. */
  seed?: number;
  /** Diagnostics to the `logger` (or the console): "off" (default; "info" with a `logger`), "error", "warn", "info", "debug". */
  logLevel?: "off" | "error" | "warn" | "info" | "debug";
  /** Receives each diagnostics entry (default: the console). Never given tokens, query strings or transcript text. */
  logger?: (entry: LogEntry) => void;
}

export interface StateEvent { state: TranscriptionState; previous: TranscriptionState; attempt: number; retryInMs: number | null; reason: string | null }
export interface OpenEvent { connection: number; backlogChunks: number; resumeOffset: number | null }
/** One word with its times, in seconds of stream time. */
export interface TranscriptWord { word: string; start: number; end: number }
/** `start`/`end` are seconds of stream time: from the first sample pushed, continuous across reconnects. */
export interface TranscriptEvent { text: string; isFinal: boolean; speechFinal: boolean; start: number; end: number; speaker: string | null; channel: number; words: TranscriptWord[] }
export interface TranscriptionMessageEvent { data: string }
export interface DroppedEvent { chunks: number; bytes: number; audioMs: number; reason: "ttl" | "capacity" | "closed" | "failed" | "unconfirmed" | "format" }
/** `fatal` is true only when the session is now failed. */
export interface TranscriptionErrorEvent { code: ErrorCode; message: string; fatal: boolean; cause?: unknown }
export interface ReconnectingEvent { attempt: number; delayMs: number }
export interface TranscriptionStats {
  bytesPushed: number; bytesSent: number; bytesAcked: number; bytesQueued: number; bytesDropped: number; bytesResent: number;
  chunksPushed: number; chunksSent: number; chunksQueued: number; chunksDropped: number; chunksReplayed: number;
  audioMsQueued: number; audioMsDropped: number; attempts: number; reconnects: number; keepalivesSent: number;
  messagesReceived: number; transcripts: number; bufferedAmount: number;
  serverOffset: number | null; probesFailed: number; duplicateFinalsSuppressed: number;
  /** Push-to-talk: audio captured between utterances, never part of the stream. */ audioMsGated: number;
}
/** A capture source started or ended; a source that ends leaves its channel silent. */
export interface CaptureEvent { source: "microphone" | "systemAudio"; state: "started" | "ended" }
/** An utterance's result: its final transcripts; times in ms of stream time. */
export interface UtteranceResult { id: number; text: string; finals: TranscriptEvent[]; startMs: number; endMs: number; audioMs: number; latencyMs: number; timedOut: boolean }
export interface CloseSummary { code: number | null; reason: string; state: TranscriptionState; stats: TranscriptionStats }
export interface TranscriptionEventMap {
  state: StateEvent; open: OpenEvent; transcript: TranscriptEvent; message: TranscriptionMessageEvent;
  dropped: DroppedEvent; error: TranscriptionErrorEvent; close: CloseSummary; reconnecting: ReconnectingEvent;
  utterance: UtteranceResult; capture: CaptureEvent;
}
/** Errors thrown or rejected by the client carry a stable `code` (and `field` for bad arguments). */
export interface ClientError extends Error { code: ErrorCode; field?: string }
export interface CloseOptions { /** Send queued audio, finalize, await finals; default true. */ flush?: boolean; /** Bound; default closeTimeoutMs. */ timeoutMs?: number }
export interface MicrophoneOptions {
  deviceId?: string; echoCancellation?: boolean; noiseSuppression?: boolean; autoGainControl?: boolean;
  /** URL of the worklet module, for pages whose CSP forbids blob: URLs. */ workletUrl?: string;
  /** Sample rate to ask the AudioContext for; default: the device's. */ contextSampleRate?: number;
}
/** A diagnostics entry: `data` is the event's payload (transcripts and messages: their size only). */
export interface LogEntry {
  level: "error" | "warn" | "info" | "debug";
  /** The event type, "closed" or "socket-closed". */ event: string;
  /** Milliseconds since the client was created. */ atMs: number;
  data: Record<string, unknown>;
  /** The queue's level then (not on socket closes). */ queuedMs?: number;
}
/** `client.diagnostics()`: what a bug report needs. Times: ms since the client was created. */
export interface DiagnosticsSnapshot {
  version: string; state: TranscriptionState; connections: number; utterances: number;
  timings: { uptimeMs: number; lastConnectMs: number | null; readySinceMs: number | null; lastUtteranceLatencyMs: number | null };
  /** The last 16 state changes. */ transitions: { atMs: number; from: TranscriptionState; to: TranscriptionState; reason: string | null }[];
  /** The last 16 socket closes. */ closes: { atMs: number; by: "client" | "server or network"; code: number; reason: string }[];
  lastError: { atMs: number; code: ErrorCode; message: string; fatal: boolean } | null;
  stats: TranscriptionStats;
  config: { provider: string; url: string; sampleRate: number; channels: number; chunkMs: number; pushToTalk: { preRollMs: number; timeoutMs: number; connection: "warm" | "onDemand" } | null; staleAfterMs: number; ttlMs: number; maxBytes: number; getToken: boolean };
  logLevel: "off" | "error" | "warn" | "info" | "debug";
}
export interface UtteranceOptions { /** Pre-roll for this utterance, at most `pushToTalk.preRollMs`. */ preRollMs?: number }
export interface StartCaptureOptions {
  /** Channel 0: true (default), the device's options, a MediaStream, or false. */
  microphone?: boolean | MediaStream | { deviceId?: string; echoCancellation?: boolean; noiseSuppression?: boolean; autoGainControl?: boolean };
  /** Channel 1: true asks the browser to share a tab or screen with its audio; or a MediaStream (Electron desktopCapturer, a Tauri plugin). */
  systemAudio?: boolean | MediaStream;
  workletUrl?: string;
  contextSampleRate?: number;
}

export interface TranscriptionClient {
  /**
   * Closes. With `flush` (default true): sends what is queued, asks the backend to finalize, waits for
   * final results and its close, bounded by `timeoutMs` (default `closeTimeoutMs`), then closes 1000.
   * Without: closes at once and reports unsent audio as dropped. Resolves with a summary; never rejects.
   */
  close(options?: CloseOptions): Promise<CloseSummary>;
  /**
   * Captures the microphone (AudioWorklet → resample → PCM16 → queue); resolves when audio flows.
   * Rejects with code `mic-active` if already capturing, `closed` after close(), `mic-permission` when denied.
   */
  startMicrophone(options?: MicrophoneOptions): Promise<void>;
  /**
   * Captures the microphone (channel 0) and/or the system audio (channel 1) through one AudioContext, sample-aligned;
   * with `channels: 1` both are mixed. Resolves when audio flows.
   */
  startCapture(options?: StartCaptureOptions): Promise<void>;
  /** Begins an utterance (push-to-talk key down); returns its id. Throws `usage` while one runs. */
  beginUtterance(options?: UtteranceOptions): number;
  /** Ends it (key up); resolves with its final transcripts, or with what arrived after `pushToTalk.timeoutMs` (`timedOut: true`). */
  endUtterance(): Promise<UtteranceResult>;
  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof TranscriptionEventMap>(type: K, listener: (event: TranscriptionEventMap[K]) => void): () => void;
  /** Adds a listener called at most once; returns a function that removes it. */
  once<K extends keyof TranscriptionEventMap>(type: K, listener: (event: TranscriptionEventMap[K]) => void): () => void;
  /** Removes a listener added with `on` or `once`. */
  off<K extends keyof TranscriptionEventMap>(type: K, listener: (event: TranscriptionEventMap[K]) => void): void;
}
