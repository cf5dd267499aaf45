// socket.io-client: what an app with its own socket.io backend would ship.
import { io } from "socket.io-client";
export default io;
