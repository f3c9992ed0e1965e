#!/usr/bin/env python3
"""Make the README's server screenshot from a real run (see scripts/screenshot-server).

Runs server-tui full screen in a pseudo-terminal, pairs two clients with codes drawn ahead
(`server-tui pairing code`) and keeps them connected (`client-tui agent`), sends a few
tasks, then has a third client ask to pair so the banner shows its code. The terminal's
screen is read by a terminal emulator (pyte) and drawn into a PNG (Pillow), block elements
by hand so the big digits have no gaps.

    screenshot-server.py BIN_DIR OUT.png

Run it where nothing but loopback exists: the wrapper script makes that namespace.
"""

import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time

import pyte
from PIL import Image, ImageDraw, ImageFont

COLS, ROWS = 100, 30
CELL_W, CELL_H, FONT_SIZE, PAD = 9, 20, 15, 12
FONT_DIR = "/usr/share/fonts/truetype/dejavu"

# A dark palette close to the client screenshots'.
PALETTE = {
    "default_fg": (171, 178, 191),
    "default_bg": (30, 33, 39),
    "black": (40, 44, 52),
    "red": (224, 108, 117),
    "green": (152, 195, 121),
    "yellow": (229, 192, 123),
    "blue": (97, 175, 239),
    "magenta": (198, 120, 221),
    "cyan": (86, 182, 194),
    "white": (171, 178, 191),
    "brightblack": (92, 99, 112),
    "brightred": (240, 128, 136),
    "brightgreen": (170, 215, 140),
    "brightyellow": (240, 205, 140),
    "brightblue": (120, 190, 250),
    "brightmagenta": (210, 140, 230),
    "brightcyan": (110, 200, 210),
    "brightwhite": (220, 223, 228),
}


def die(message):
    print(f"screenshot-server: {message}", file=sys.stderr)
    sys.exit(1)


class Terminal:
    """A program in a pseudo-terminal of COLS x ROWS, its screen kept by pyte."""

    def __init__(self, argv, env):
        self.screen = pyte.Screen(COLS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.lock = threading.Lock()
        pid, fd = pty.fork()
        if pid == 0:
            os.execvpe(argv[0], argv, env)
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        self.pid, self.fd = pid, fd
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            ready, _, _ = select.select([self.fd], [], [], 0.5)
            if not ready:
                continue
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                return
            if not data:
                return
            with self.lock:
                self.stream.feed(data)

    def text(self):
        with self.lock:
            return "\n".join(self.screen.display)

    def wait(self, what, find, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = find(self.text())
            if found:
                return found
            time.sleep(0.1)
        die(f"no {what} on the server's screen:\n{self.text()}")

    def send(self, data):
        os.write(self.fd, data)


def run(argv, **kw):
    out = subprocess.run(argv, capture_output=True, text=True, **kw)
    if out.returncode != 0:
        die(f"{' '.join(argv)} failed ({out.returncode}): {out.stderr.strip()}")
    return out.stdout


def color(name, default):
    if name == "default":
        return PALETTE[default]
    if name in PALETTE:
        return PALETTE[name]
    if len(name) == 6:
        try:
            return tuple(int(name[i : i + 2], 16) for i in (0, 2, 4))
        except ValueError:
            pass
    return PALETTE[default]


# Block elements (U+2580..U+259F) as filled rectangles of the cell: (x0, y0, x1, y1) in
# halves or eighths, drawn by hand so neighbouring cells join without gaps.
HALF = {
    "█": [(0, 0, 2, 2)],
    "▀": [(0, 0, 2, 1)],
    "▄": [(0, 1, 2, 2)],
    "▌": [(0, 0, 1, 2)],
    "▐": [(1, 0, 2, 2)],
    "▘": [(0, 0, 1, 1)],
    "▝": [(1, 0, 2, 1)],
    "▖": [(0, 1, 1, 2)],
    "▗": [(1, 1, 2, 2)],
    "▚": [(0, 0, 1, 1), (1, 1, 2, 2)],
    "▞": [(1, 0, 2, 1), (0, 1, 1, 2)],
    "▙": [(0, 0, 1, 2), (1, 1, 2, 2)],
    "▛": [(0, 0, 2, 1), (0, 1, 1, 2)],
    "▜": [(0, 0, 2, 1), (1, 1, 2, 2)],
    "▟": [(1, 0, 2, 2), (0, 1, 1, 2)],
}


# Light box-drawing lines as the arms they have from the cell's centre: left, right, up, down.
BOX = {
    "─": "lr",
    "│": "ud",
    "┌": "rd",
    "┐": "ld",
    "└": "ru",
    "┘": "lu",
    "├": "rud",
    "┤": "lud",
    "┬": "lrd",
    "┴": "lru",
    "┼": "lrud",
}


def box(draw, ch, x0, y0, fg):
    cx, cy = x0 + CELL_W // 2, y0 + CELL_H // 2
    arms = BOX[ch]
    if "l" in arms:
        draw.line([x0, cy, cx, cy], fill=fg)
    if "r" in arms:
        draw.line([cx, cy, x0 + CELL_W - 1, cy], fill=fg)
    if "u" in arms:
        draw.line([cx, y0, cx, cy], fill=fg)
    if "d" in arms:
        draw.line([cx, cy, cx, y0 + CELL_H - 1], fill=fg)


def render(screen, path):
    regular = ImageFont.truetype(f"{FONT_DIR}/DejaVuSansMono.ttf", FONT_SIZE)
    bold = ImageFont.truetype(f"{FONT_DIR}/DejaVuSansMono-Bold.ttf", FONT_SIZE)
    image = Image.new(
        "RGB", (COLS * CELL_W + 2 * PAD, ROWS * CELL_H + 2 * PAD), PALETTE["default_bg"]
    )
    draw = ImageDraw.Draw(image)
    for y in range(ROWS):
        row = screen.buffer[y]
        for x in range(COLS):
            cell = row[x]
            fg = color(cell.fg, "default_fg")
            bg = color(cell.bg, "default_bg")
            if cell.bold and cell.fg in PALETTE and not cell.fg.startswith("bright"):
                fg = PALETTE.get("bright" + cell.fg, fg)
            if cell.reverse:
                fg, bg = bg, fg
            x0, y0 = PAD + x * CELL_W, PAD + y * CELL_H
            if bg != PALETTE["default_bg"]:
                draw.rectangle([x0, y0, x0 + CELL_W - 1, y0 + CELL_H - 1], fill=bg)
            ch = cell.data
            if ch in HALF:
                for a, b, c, d in HALF[ch]:
                    draw.rectangle(
                        [
                            x0 + a * CELL_W // 2,
                            y0 + b * CELL_H // 2,
                            x0 + c * CELL_W // 2 - 1,
                            y0 + d * CELL_H // 2 - 1,
                        ],
                        fill=fg,
                    )
            elif ch in BOX:
                box(draw, ch, x0, y0, fg)
            elif ch.strip():
                font = bold if cell.bold else regular
                draw.text((x0, y0 + 2), ch, font=font, fill=fg)
    image.save(path)


def main():
    if len(sys.argv) != 3:
        die("usage: screenshot-server.py BIN_DIR OUT.png")
    bin_dir, out = sys.argv[1], sys.argv[2]
    server_bin, client_bin = f"{bin_dir}/server-tui", f"{bin_dir}/client-tui"
    tmp = tempfile.mkdtemp(prefix="csc-shot-")
    sdir = f"{tmp}/server"
    env = dict(os.environ, TERM="xterm-256color", HOME=tmp)
    env.pop("NO_COLOR", None)
    server = Terminal(
        [
            server_bin,
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--name",
            "front-desk",
            "--config",
            "assets/server.toml",
            "--state-dir",
            sdir,
        ],
        env,
    )

    def port_of(text):
        marker = "listening on 127.0.0.1 port "
        at = text.find(marker)
        if at < 0:
            return None
        digits = "".join(c for c in text[at + len(marker) :][:6] if c.isdigit())
        return digits or None

    port = server.wait("listening line", port_of)
    addr = f"127.0.0.1:{port}"
    helpers = []
    for name in ["till-7", "kiosk-1"]:
        code = json.loads(
            run([server_bin, "pairing", "code", "--json", "--state-dir", sdir])
        )["code"]
        cdir = f"{tmp}/{name}"
        base = [client_bin, "--state-dir", cdir, "--name", name]
        run(base + ["pair", "--server", addr, "--code", code], stdin=subprocess.DEVNULL)
        helpers.append(
            subprocess.Popen(
                base + ["agent"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    server.wait("two connected clients", lambda t: "2 paired, 2 connected" in t)
    till = [client_bin, "--state-dir", f"{tmp}/till-7"]
    run(till + ["send", "greet", "ada"])
    run(till + ["send", "ping"])
    run([client_bin, "--state-dir", f"{tmp}/kiosk-1", "send", "count"])
    # A third machine asks to pair: its code fills the banner.
    asking = subprocess.Popen(
        [client_bin, "--state-dir", f"{tmp}/tablet", "--name", "tablet", "pair", "--server", addr],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    helpers.append(asking)
    server.wait("pairing request", lambda t: "Code " in t and " for tablet" in t)
    # Let the countdown tick once so the screen is settled, then take it.
    time.sleep(1.2)
    with server.lock:
        render(server.screen, out)
    print(server.text())
    server.send(b"\x03")
    for p in helpers:
        p.terminate()
    for p in helpers:
        p.wait(timeout=10)
    print(f"screenshot-server: wrote {out}")


if __name__ == "__main__":
    main()
