"""A tiny HTTP server with byte-range support on 127.0.0.1, for GDAL /vsicurl/ tests.

Serves one folder read-only; answers ``Range: bytes=a-b`` with 206 Partial Content, as COG
readers expect. Runs in a daemon thread and stops when the ``with`` block ends (or after
``max_seconds``, whichever comes first); it listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
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


@contextlib.contextmanager
def serve_folder(folder: str | os.PathLike, max_seconds: float = 300) -> Iterator[tuple[str, list[str]]]:
    """Serve ``folder`` on ``http://127.0.0.1:<free port>``; yield (base URL, request log)."""
    log: list[str] = []
    handler = functools.partial(type("Handler", (RangeHandler,), {"requests": log}), directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    timer = threading.Timer(max_seconds, server.shutdown)  # bounded even if a test hangs
    timer.daemon = True
    timer.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", log
    finally:
        timer.cancel()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
