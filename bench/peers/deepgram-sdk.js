// @deepgram/sdk, the live (streaming) client: DeepgramClient → listen.v1.connect.
import { DeepgramClient } from "@deepgram/sdk";
export function live(apiKey) {
  return new DeepgramClient({ apiKey }).listen.v1.connect({ model: "nova-3", encoding: "linear16", sample_rate: 16000 });
}
