// Speechmatics in the browser: the real-time client plus its microphone capture.
import { RealtimeClient } from "@speechmatics/real-time-client";
import { PCMRecorder } from "@speechmatics/browser-audio-input";
export { RealtimeClient, PCMRecorder };
