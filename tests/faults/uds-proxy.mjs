// Runs inside the server's network namespace: forwards connections made to
// a Unix socket (which crosses namespaces: it is a file) to HOST:PORT
// there, so the runner reaches the devserver's control API without any
// route between the namespaces but the veth pair under test.
// Usage: node uds-proxy.mjs SOCKET HOST PORT
import net from "node:net";
import { rmSync } from "node:fs";

const [sock, host, port] = process.argv.slice(2);
rmSync(sock, { force: true });
const server = net.createServer((c) => {
  const up = net.connect({ host, port: Number(port) });
  c.pipe(up); up.pipe(c);
  c.on("error", () => up.destroy());
  up.on("error", () => c.destroy());
});
server.listen(sock, () => process.stdout.write("ready\n"));
const stop = () => { server.close(); rmSync(sock, { force: true }); process.exit(0); };
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
