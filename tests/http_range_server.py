"""A tiny HTTP server with byte-range support on 127.0.0.1, for GDAL /vsicurl/ tests.

Serves one folder read-only; answers ``Range: bytes=a-b`` with 206 Partial Content, as COG
readers expect. A threaded server in a child process that stops when the ``with`` block ends
(or after ``max_seconds``, whichever comes first); it listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """GET/HEAD of files under ``directory``, honouring single byte ranges; counts requests."""

    requests: list[str]

    def log_message(self, format, *args):  # quiet: tests read the counts instead
        pass

    def send_head(self):
        path = Path(self.translate_path(self.path))
        self.requests.append(f"{self.command} {self.path} {self.headers.get('Range', '')}")
        if not path.is_file():
            self.send_error(404, "not found")
            return None
        size = path.stat().st_size
        match = _RANGE.match(self.headers.get("Range", "").strip())
        start, end = 0, size - 1
        if match and (match.group(1) or match.group(2)):
            if match.group(1):
                start = int(match.group(1))
                end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
            else:  # suffix range: the last N bytes
                start = max(0, size - int(match.group(2)))
            if start >= size:
                self.send_error(416, "range not satisfiable")
                return None
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        f = open(path, "rb")  # closed by SimpleHTTPRequestHandler.do_GET after copyfile
        f.seek(start)
        self._remaining = end - start + 1
        return f

    def copyfile(self, source, outputfile):
        remaining = self._remaining
        while remaining > 0:
            chunk = source.read(min(65536, remaining))
            if not chunk:
                break
            outputfile.write(chunk)
            remaining -= len(chunk)


def _serve(folder: str, log_path: str, max_seconds: float) -> None:
    """The child process: serve ``folder`` on a free port (printed on stdout), log requests, stop by itself."""
    log = open(log_path, "a", buffering=1)  # one line per request, flushed
    base = type("Handler", (RangeHandler,), {"requests": _Log(log)})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(base, directory=folder))
    server.daemon_threads = True
    timer = threading.Timer(max_seconds, server.shutdown)  # bounded even if the parent dies
    timer.daemon = True
    timer.start()
    print(server.server_address[1], flush=True)
    server.serve_forever(poll_interval=0.05)
    server.server_close()


class _Log:
    def __init__(self, f):
        self.f = f

    def append(self, line: str) -> None:
        self.f.write(line + "\n")


@contextlib.contextmanager
def serve_folder(folder: str | os.PathLike, max_seconds: float = 300) -> Iterator[tuple[str, Path]]:
    """Serve ``folder`` on ``http://127.0.0.1:<free port>``; yield (base URL, request log file).

    The server runs in a child process: GDAL holds the GIL while it opens a dataset, so a
    server thread of the reading process would never answer.
    """
    log = Path(tempfile.mkdtemp(prefix="geoseg-http-")) / "requests.log"
    log.touch()
    proc = subprocess.Popen([sys.executable, __file__, str(folder), str(log), str(max_seconds)],
                            stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}", log
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()


if __name__ == "__main__":
    _serve(sys.argv[1], sys.argv[2], float(sys.argv[3]))
