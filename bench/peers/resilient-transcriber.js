// This package through the same bundler, for comparison with the shipped files.
import init, { TranscriptionClient } from "../../pkg/resilient_transcriber.js";
export { init, TranscriptionClient };
