#!/usr/bin/env python3
"""Run a task through the client agent, stream its output, and print the server's notices.

Nothing but the standard library. Start the agent first (`client-tui agent`), then:

    python3 examples/agent-client.py [--state-dir DIR] [--listen SECONDS] TASK [ARGS...]

The agent's socket is agent.sock in the client's state folder (--state-dir, else
CSC_CLIENT_STATE_DIR, else ~/.local/share/client-server-communicator/client). The protocol
is docs/agent.md: one JSON object per line each way. Exits with the task's exit code as
`client-tui send` would.
"""

import argparse
import base64
import json
import os
import socket
import sys
import time


def state_dir(given):
    if given:
        return given
    if os.environ.get("CSC_CLIENT_STATE_DIR"):
        return os.environ["CSC_CLIENT_STATE_DIR"]
    data = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return os.path.join(data, "client-server-communicator", "client")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--state-dir")
    p.add_argument("--listen", type=float, default=0.0,
                   help="after the task, keep printing notices for this many seconds")
    p.add_argument("task")
    p.add_argument("args", nargs="*")
    opts = p.parse_args()

    path = os.path.join(state_dir(opts.state_dir), "agent.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as e:
        sys.exit(f"agent-client: no agent at {path} ({e}); start one with `client-tui agent`")
    lines = sock.makefile("r", encoding="utf-8", newline="\n")

    def send(obj):
        sock.sendall((json.dumps(obj) + "\n").encode())

    def notice(msg):
        print(f"notice: {msg['text']}", file=sys.stderr, flush=True)

    send({"subscribe": ["notice"]})
    send({"id": 1, "task": opts.task, "args": opts.args})
    code = 1
    for line in lines:
        msg = json.loads(line)
        if msg.get("event") == "notice":
            notice(msg)
        elif msg.get("id") != 1:
            continue
        elif msg.get("event") == "output":
            out = sys.stdout if msg["stream"] == "stdout" else sys.stderr
            data = base64.urlsafe_b64decode(msg["data"] + "=" * (-len(msg["data"]) % 4))
            out.buffer.write(data)
            out.flush()
        elif "ok" in msg:
            if "result" in msg:
                print(msg["result"] if isinstance(msg["result"], str) else json.dumps(msg["result"]))
            if not msg["ok"]:
                print(f"agent-client: {msg['error']['message']}", file=sys.stderr)
            code = msg.get("exit_code", 0 if msg["ok"] else 1)
            break
    deadline = time.monotonic() + opts.listen
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            line = lines.readline()
        except (socket.timeout, TimeoutError):
            break
        if not line:
            break
        msg = json.loads(line)
        if msg.get("event") == "notice":
            notice(msg)
    sys.exit(code)


if __name__ == "__main__":
    main()
