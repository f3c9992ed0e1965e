#!/usr/bin/env node
// Run a task through the client agent, stream its output, and print the server's notices.
//
// Nothing but Node's standard library (Node 20). Start the agent first (`client-tui agent`):
//
//   node examples/agent-client.mjs [--state-dir DIR] [--listen SECONDS] TASK [ARGS...]
//
// The agent's socket is agent.sock in the client's state folder (--state-dir, else
// CSC_CLIENT_STATE_DIR, else ~/.local/share/client-server-communicator/client). The protocol
// is docs/agent.md: one JSON object per line each way. Exits with the task's exit code as
// `client-tui send` would.

import net from "node:net";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";

const argv = process.argv.slice(2);
let stateDir = process.env.CSC_CLIENT_STATE_DIR;
let listen = 0;
while (argv[0]?.startsWith("--")) {
  const flag = argv.shift();
  if (flag === "--state-dir") stateDir = argv.shift();
  else if (flag === "--listen") listen = Number(argv.shift());
  else { console.error(`agent-client: unknown option ${flag}`); process.exit(2); }
}
const [task, ...args] = argv;
if (!task) { console.error("usage: agent-client.mjs [--state-dir DIR] [--listen S] TASK [ARGS...]"); process.exit(2); }
if (!stateDir) {
  const data = process.env.XDG_DATA_HOME || path.join(os.homedir(), ".local", "share");
  stateDir = path.join(data, "client-server-communicator", "client");
}

const socketPath = path.join(stateDir, "agent.sock");
const sock = net.connect(socketPath);
sock.on("error", (e) => {
  console.error(`agent-client: no agent at ${socketPath} (${e.message}); start one with \`client-tui agent\``);
  process.exit(1);
});
const send = (obj) => sock.write(JSON.stringify(obj) + "\n");
const notice = (msg) => process.stderr.write(`notice: ${msg.text}\n`);

let code = null;
const finish = () => { sock.end(); process.exit(code ?? 1); };
readline.createInterface({ input: sock }).on("line", (line) => {
  const msg = JSON.parse(line);
  if (msg.event === "notice") { notice(msg); return; }
  if (msg.id !== 1 || code !== null) return;
  if (msg.event === "output") {
    const out = msg.stream === "stdout" ? process.stdout : process.stderr;
    out.write(Buffer.from(msg.data, "base64url"));
  } else if ("ok" in msg) {
    if ("result" in msg) console.log(typeof msg.result === "string" ? msg.result : JSON.stringify(msg.result));
    if (!msg.ok) console.error(`agent-client: ${msg.error.message}`);
    code = msg.exit_code ?? (msg.ok ? 0 : 1);
    if (listen > 0) setTimeout(finish, listen * 1000); else finish();
  }
});
sock.on("close", () => process.exit(code ?? 1));
send({ subscribe: ["notice"] });
send({ id: 1, task, args });
