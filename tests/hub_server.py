"""A stand-in for the Hugging Face Hub on loopback HTTP: the URL layout `huggingface_hub` uses
(`/api/models/{repo}/revision/{rev}`, `/api/models/{repo}/tree/{rev}`,
`/{repo}/resolve/{rev}/{file}`), serving repositories held in memory. Tests point HF_ENDPOINT at
it, so nothing leaves the machine. Every request is recorded (which files were fetched)."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse


@dataclass
class FakeHub:
    """Repositories: repo id -> {file name: bytes}; `requests`: (method, path) in order;
    `delay`: seconds each file download takes (sent in 8 parts), to watch progress."""

    repos: dict[str, dict[str, bytes]] = field(default_factory=dict)
    delay: float = 0.0
    break_off: bool = False  # file downloads stop half-way (the connection drops)
    requests: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""

    def add_folder(self, repo_id: str, folder: Path, extra: dict[str, bytes] | None = None) -> None:
        """Serve every file of `folder` (and `extra` files) as repository `repo_id`."""
        files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
        self.repos[repo_id] = {**files, **(extra or {})}

    def sha(self, repo_id: str) -> str:
        """The repository's commit hash (40 hex digits, from its content)."""
        digest = hashlib.sha1()
        for name, data in sorted(self.repos[repo_id].items()):
            digest.update(name.encode() + hashlib.sha1(data).digest())
        return digest.hexdigest()

    def fetched(self) -> set[str]:
        """The file names whose content was downloaded (GET on a resolve URL)."""
        return {
            path.rsplit("/", 1)[1] for method, path in self.requests
            if method == "GET" and "/resolve/" in path
        }  # fmt: skip


def _blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str], head: bool) -> None:
        self.send_response(status)
        for key, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(key, value)
        self.end_headers()
        if head:
            return
        if self.hub.break_off and len(body) > 1:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if not self.hub.delay or len(body) < 8:
            self.wfile.write(body)
            return
        step = -(-len(body) // 8)
        for start in range(0, len(body), step):
            time.sleep(self.hub.delay / 8)
            self.wfile.write(body[start : start + step])
            self.wfile.flush()

    def _json(self, value: object, head: bool) -> None:
        self._send(200, json.dumps(value).encode(), {"Content-Type": "application/json"}, head)

    def _not_found(self, head: bool) -> None:
        body = b'{"error": "Repository not found"}'
        self._send(404, body, {"X-Error-Code": "RepoNotFound"}, head)

    def _route(self, head: bool) -> None:
        path = unquote(urlparse(self.path).path)
        self.hub.requests.append(("HEAD" if head else "GET", path))
        for repo_id, files in self.hub.repos.items():
            sha = self.hub.sha(repo_id)
            if path.startswith(f"/api/models/{repo_id}/revision/"):
                siblings = [{"rfilename": name} for name in sorted(files)]
                return self._json({"id": repo_id, "sha": sha, "siblings": siblings}, head)
            if path.startswith(f"/api/models/{repo_id}/tree/"):
                tree = [
                    {"type": "file", "path": n, "size": len(d), "oid": _blob_id(d)}
                    for n, d in sorted(files.items())
                ]
                return self._json(tree, head)
            prefix = f"/{repo_id}/resolve/"
            if path.startswith(prefix):
                name = path[len(prefix) :].split("/", 1)[1]
                if name not in files:
                    return self._send(404, b"", {"X-Error-Code": "EntryNotFound"}, head)
                data = files[name]
                headers = {"X-Repo-Commit": sha, "ETag": f'"{_blob_id(data)}"'}
                return self._send(200, data, headers, head)
        return self._not_found(head)

    def do_GET(self) -> None:
        self._route(head=False)

    def do_HEAD(self) -> None:
        self._route(head=True)


@contextmanager
def serve(hub: FakeHub) -> Iterator[FakeHub]:
    """Serve `hub` on 127.0.0.1 (a free port) for the duration of the block; `hub.url` is set."""
    handler = type("Handler", (_Handler,), {"hub": hub})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
