// AssemblyAI's streaming transcriber, from its browser streaming entry.
import { StreamingTranscriber } from "assemblyai/streaming";
export default StreamingTranscriber;
