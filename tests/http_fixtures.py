"""A real HTTP server on 127.0.0.1 that behaves like the hostile web the downloader meets.

Each path is one behaviour: an image, an error status, a server that fails then
recovers, an HTML page that claims to be a JPEG, a trickle, a body that never ends,
redirects and redirect loops, thumbnails that differ only by their query string.
`hits` counts requests per path+query, so tests can see what was fetched again;
`connections` counts TCP connections accepted, and `headers` keeps the request
headers seen, so tests can see keep-alive and what the client asks for.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from collections import Counter
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

from PIL import Image


def image_bytes(fmt: str = "PNG", color=(200, 30, 30), size=(8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format=fmt)
    return buf.getvalue()


def numbered(n: int) -> bytes:
    return image_bytes("PNG", (n % 256, n // 256 % 256, 77))


PNG = image_bytes("PNG")
JPEG = image_bytes("JPEG", (10, 20, 250))
THUMBS = {str(i): image_bytes("PNG", (i * 40, 100, 50)) for i in range(1, 4)}
FLAKY = image_bytes("JPEG", (90, 90, 10))
LIMITED = image_bytes("PNG", (0, 90, 10))
HTML = b"<!DOCTYPE html><html><head><title>404 Not Found</title></head><body>gone</body></html>"
BIG = b"\x89PNG\r\n\x1a\n" + b"x" * 200_000


class WebServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # socketserver's 5 drops connects when 8 workers arrive at once on a busy machine

    def __init__(self, delay: float = 0.0):
        super().__init__(("127.0.0.1", 0), Handler)
        self.hits: Counter[str] = Counter()
        self.connections = 0
        self.headers: list[dict[str, str]] = []
        self.delay = delay  # added to every response, like a far-away server
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def handle_error(self, request, client_address) -> None:
        pass  # clients that hang up on a trickle are the point, not an error

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked bodies, as real servers do
    server: WebServer

    def log_message(self, *args) -> None:
        pass

    def setup(self) -> None:  # once per connection, however many requests it carries
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def send_body(self, body: bytes, content_type: str = "text/html", status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:  # noqa: C901 - one branch per behaviour reads best here
        with self.server.lock:
            self.server.hits[self.path] += 1
            self.server.headers.append(dict(self.headers))
            n = self.server.hits[self.path]
        if self.server.delay:
            time.sleep(self.server.delay)
        path, _, query = self.path.partition("?")
        if path == "/bear.png":
            self.send_body(PNG, "text/html")  # lies: the content decides
        elif path == "/bear.jpg":
            self.send_body(JPEG, "image/jpeg")
        elif path.startswith("/img/"):  # /img/<n>.png: a distinct image per number
            self.send_body(numbered(int(path[5:].split(".")[0])), "image/png")
        elif path == "/copy.png":
            self.send_body(PNG, "image/png")
        elif path == "/thumb":  # a search engine's thumbnail URL: everything is in the query
            body = THUMBS.get(query.removeprefix("id="))
            self.send_body(body, "image/png") if body else self.send_error(404)
        elif path == "/flaky":  # 500 twice, then the image
            self.send_body(b"oops", status=500) if n <= 2 else self.send_body(FLAKY, "image/jpeg")
        elif path == "/limited":  # rate limited once
            self.send_body(b"slow down", status=429) if n <= 1 else self.send_body(LIMITED, "image/png")
        elif path == "/down":
            self.send_body(b"down", status=503)
        elif path == "/html-as-jpeg":
            self.send_body(HTML, "image/jpeg")
        elif path == "/empty":
            self.send_body(b"", "image/jpeg")
        elif path == "/big":
            self.send_body(BIG, "image/png")
        elif path == "/redirect":
            self.redirect("/bear.jpg")
        elif path == "/loop":
            self.redirect("/loop")
        elif path == "/to-file":
            self.redirect("file:///etc/passwd")
        elif path == "/trickle":
            self.trickle()
        elif path == "/silent":
            self.silent()
        elif path == "/endless":
            self.endless()
        else:
            self.send_error(404)

    def trickle(self) -> None:
        """A JPEG that arrives one byte every 50 ms: never silent long enough for a read timeout."""
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", "1000000")
        self.end_headers()
        data = JPEG * 100
        try:
            for i in range(len(data)):
                if self.server.stopping.is_set():
                    return
                self.wfile.write(data[i:i + 1])
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass

    def silent(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(JPEG[:10])
        self.wfile.flush()
        self.server.stopping.wait(30)

    def endless(self) -> None:
        """A chunked PNG-looking body that never ends."""
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"\x89PNG\r\n\x1a\n" + b"\0" * 8184
        try:
            while not self.server.stopping.is_set():
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:
            pass


@contextmanager
def serve(delay: float = 0.0) -> Iterator[WebServer]:
    """Run a WebServer in a thread for the duration of the block."""
    server = WebServer(delay)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on: connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
