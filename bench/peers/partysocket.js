// partysocket: a reconnecting WebSocket (no buffering guarantee, no transcription protocol).
import { WebSocket } from "partysocket";
export default WebSocket;
