"""A stand-in for the Hugging Face Hub's HTTP API, serving on 127.0.0.1 for the Hub tests.

It implements only what ``huggingface_hub``'s client calls to create a repository, commit
files (all sent inline: the pre-upload answer marks every file "regular", so neither LFS nor
Xet storage is involved), read model info and resolve / download files. Every request is
recorded with its ``Authorization`` header so tests can check which token was sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

_REPO = r"(?P<repo>[^/]+/[^/]+)"
_ROUTES = [
    ("POST", re.compile(r"^/api/repos/create$"), "create_repo"),
    ("POST", re.compile(r"^/api/validate-yaml$"), "validate_yaml"),
    ("GET", re.compile(r"^/api/agent-harnesses$"), "agent_harnesses"),
    ("POST", re.compile(rf"^/api/models/{_REPO}/preupload/(?P<rev>[^/]+)$"), "preupload"),
    ("POST", re.compile(rf"^/api/models/{_REPO}/commit/(?P<rev>[^/]+)$"), "commit"),
    ("GET", re.compile(rf"^/api/models/{_REPO}(?:/revision/(?P<rev>[^/]+))?$"), "model_info"),
    ("GET", re.compile(rf"^/api/models/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$"), "tree"),
    ("HEAD", re.compile(rf"^/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"), "resolve"),
    ("GET", re.compile(rf"^/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"), "resolve"),
]


@dataclass
class Repo:
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[str] = field(default_factory=list)

    @property
    def head(self) -> str:
        return self.commits[-1] if self.commits else "0" * 40


@dataclass
class Request:
    method: str
    path: str
    authorization: str | None
    body: bytes


class FakeHub:
    """The server's state, and the server itself once :meth:`start` has run."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[Request] = []
        self.unhandled: list[str] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            state = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # ----------------------------------------------------------------- endpoints

    def create_repo(self, handler: _Handler, body: dict[str, Any]) -> None:
        repo_id = f"{body.get('organization') or 'tester'}/{body['name']}"
        with self._lock:
            self.repos.setdefault(repo_id, Repo())
        handler.send_json({"url": f"{self.endpoint}/{repo_id}", "name": repo_id})

    def validate_yaml(self, handler: _Handler, body: dict[str, Any]) -> None:
        handler.send_json({"errors": [], "warnings": []})

    def agent_harnesses(self, handler: _Handler) -> None:
        # The client's best-effort agent detection reads this registry; an empty one disables it.
        handler.send_json({"standardEnvVars": [], "harnesses": {}})

    def preupload(self, handler: _Handler, body: dict[str, Any], repo: str, rev: str) -> None:
        if repo not in self.repos:
            return handler.send_error_code(404, "RepoNotFound")
        files = [
            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
            for f in body["files"]
        ]
        handler.send_json({"files": files, "commitOid": self.repos[repo].head})

    def commit(self, handler: _Handler, raw: bytes, repo: str, rev: str) -> None:
        if repo not in self.repos:
            return handler.send_error_code(404, "RepoNotFound")
        lines = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
        with self._lock:
            stored = self.repos[repo]
            for line in lines:
                value = line["value"]
                if line["key"] == "file":
                    stored.files[value["path"]] = base64.b64decode(value["content"])
                elif line["key"] == "deletedFile":
                    stored.files.pop(value["path"], None)
                elif line["key"] != "header":
                    return handler.send_error_code(400, "UnsupportedOperation")
            digest = hashlib.sha1(raw + str(len(stored.commits)).encode()).hexdigest()
            stored.commits.append(digest)
        handler.send_json(
            {
                "commitUrl": f"{self.endpoint}/{repo}/commit/{digest}",
                "commitOid": digest,
                "success": True,
                "pullRequestUrl": None,
            }
        )

    def model_info(self, handler: _Handler, repo: str, rev: str | None) -> None:
        if repo not in self.repos:
            return handler.send_error_code(404, "RepoNotFound")
        stored = self.repos[repo]
        handler.send_json(
            {
                "id": repo,
                "modelId": repo,
                "sha": stored.head,
                "private": False,
                "tags": [],
                "siblings": [{"rfilename": path} for path in sorted(stored.files)],
            }
        )

    def tree(self, handler: _Handler, repo: str, rev: str, path: str | None) -> None:
        if repo not in self.repos:
            return handler.send_error_code(404, "RepoNotFound")
        prefix = (path or "").strip("/")
        entries = [
            {"type": "file", "path": name, "size": len(data), "oid": _etag(data)}
            for name, data in sorted(self.repos[repo].files.items())
            if not prefix or name.startswith(prefix + "/")
        ]
        handler.send_json(entries)

    def resolve(self, handler: _Handler, repo: str, rev: str, path: str) -> None:
        if repo not in self.repos:
            return handler.send_error_code(404, "RepoNotFound")
        stored = self.repos[repo]
        data = stored.files.get(unquote(path))
        if data is None:
            return handler.send_error_code(404, "EntryNotFound", commit=stored.head)
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("ETag", f'"{_etag(data)}"')
        handler.send_header("X-Repo-Commit", stored.head)
        handler.end_headers()
        if handler.command == "GET":
            handler.wfile.write(data)


class _Handler(BaseHTTPRequestHandler):
    state: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path
        self.state.requests.append(
            Request(self.command, path, self.headers.get("Authorization"), raw)
        )
        for method, pattern, name in _ROUTES:
            match = pattern.match(path)
            if method != self.command or match is None:
                continue
            groups = {k: v for k, v in match.groupdict().items()}
            handler = getattr(self.state, name)
            if name == "commit":
                return handler(self, raw, **groups)
            if self.command == "POST":
                return handler(self, json.loads(raw or b"{}"), **groups)
            return handler(self, **groups)
        self.state.unhandled.append(f"{self.command} {path}")
        self.send_error_code(404, "EntryNotFound")

    def send_json(self, payload: Any, status: int = 200) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_error_code(self, status: int, code: str, commit: str | None = None) -> None:
        data = json.dumps({"error": code}).encode()
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", code)
        if commit is not None:
            self.send_header("X-Repo-Commit", commit)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


def _etag(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
