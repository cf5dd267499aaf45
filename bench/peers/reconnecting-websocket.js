// reconnecting-websocket: the classic reconnecting WebSocket wrapper.
import ReconnectingWebSocket from "reconnecting-websocket";
export default ReconnectingWebSocket;
