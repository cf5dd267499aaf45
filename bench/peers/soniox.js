// Soniox's browser SDK (microphone capture and streaming in one client).
import { SonioxClient } from "@soniox/speech-to-text-web";
export default SonioxClient;
