// With esnext.disposable in `lib` (tsconfig.json), the client is Disposable.
import { TranscriptionClient } from "../../pkg/resilient_transcriber.js";

export function scoped(): void {
  using client = new TranscriptionClient({ url: "wss://example.com/v1/listen" });
  const d: Disposable = client;
  console.log(client.state, d);
}
