"""A fake W&B server at the HTTP seam: the GraphQL operations of W&B's sweep protocol (viewer, upsertSweep,
createAgent, agentHeartbeat), on a local port, with a scripted controller and fault switches; for the download
helpers, finished runs to read back (run, its files, its history, a sweep's runs) with their files served over GET;
and, for online runs, what wandb-core 0.31 sends while a run lives (UpsertBucket to create or attach to a run,
RunResumeStatus, ServerFeaturesQuery, CreateRunFiles, the file_stream posts and the file uploads), each request
recorded (:class:`Sent`) so a test reads what every process really sent, with switches that stall or refuse them."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml

KEY = "fake-key-0123456789"
# wandb's own clients (wandb.agent) refuse a key shorter than 40 characters before sending it.
LONG_KEY = "fake-key-" + "0123456789" * 4


@dataclass
class Sent:
    """One request of a run, as the server received it."""

    operation: str
    """The GraphQL operation (``UpsertBucket``...) or ``file_stream``/``upload``."""
    variables: dict[str, Any]
    """The GraphQL variables, or the file_stream body."""
    run: str | None
    at: float


RUN_OPERATIONS = frozenset(
    {"UpsertBucket", "RunResumeStatus", "ServerFeaturesQuery", "CreateRunFiles", "OrganizationCoreWeaveOrganizationID"}
)
"""The GraphQL operations (by wandb-core's operation names) of an online run that the fake serves."""


@dataclass
class StoredRun:
    """A finished run the fake serves back: its summary, history rows and files."""

    summary: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    state: str = "finished"


@dataclass
class FakeWandb:
    """State and script of the fake. ``proposals`` are the parameter dicts the controller hands out, one per idle
    heartbeat; once they run out it sends ``exit`` (or nothing, with ``exit_when_done=False``)."""

    proposals: list[dict[str, Any]] = field(default_factory=list)
    entity: str = "alice"
    exit_when_done: bool = True
    stop_runs: set[str] = field(default_factory=set)
    """Runs told to stop as soon as a heartbeat reports them running."""
    scripted: list[list[dict[str, Any]]] = field(default_factory=list)
    """Command lists sent, one per heartbeat, before the controller's own."""
    status: int | None = None
    """Answer every request with this HTTP status instead."""
    hang: bool = False
    """Accept requests and never answer them."""
    fail_agents: bool = False
    """Answer HTTP 503 to createAgent."""
    fail_heartbeats_after: int | None = None
    """Answer HTTP 500 to heartbeats after this many."""
    graphql_error: str | None = None
    """Report this GraphQL error for upsertSweep."""
    stored: dict[str, StoredRun] = field(default_factory=dict)
    """Finished runs by ``entity/project/run id``."""
    any_run: StoredRun | None = None
    """Served for a run id not in ``stored`` (a run whose id the test learns only when it runs)."""
    sweep_runs: dict[str, list[str]] = field(default_factory=dict)
    """The run ids of each stored sweep (by ``entity/project/sweep id``)."""
    broken_files: set[str] = field(default_factory=set)
    """File names whose download answers HTTP 500."""
    downloads: list[str] = field(default_factory=list)
    sweeps: list[dict[str, Any]] = field(default_factory=list)
    agents: list[dict[str, Any]] = field(default_factory=list)
    heartbeats: list[tuple[str, dict[str, bool]]] = field(default_factory=list)
    launched: list[dict[str, Any]] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    released: threading.Event = field(default_factory=threading.Event)
    bucket_faults: list[int | str] = field(default_factory=list)
    """How to answer the next UpsertBucket requests, one entry each: an HTTP status, or "hang"; then normally."""
    hang_file_stream: bool = False
    """Create runs normally but never answer the file_stream posts (the upload of a run's data)."""
    sent: list[Sent] = field(default_factory=list)

    def ops(self, operation: str) -> list[Sent]:
        """The run requests of one operation, in order."""
        with self.lock:
            return [s for s in self.sent if s.operation == operation]

    def record(self, operation: str, variables: dict[str, Any], run: str | None) -> None:
        with self.lock:
            self.sent.append(Sent(operation, variables, run, time.time()))

    def run_answer(self, operation: str, variables: dict[str, Any], url: str) -> dict[str, Any]:
        """The answer to one of wandb-core's GraphQL operations for runs."""
        if operation == "UpsertBucket":
            name = variables.get("name")
            project = {"id": "UHJvamVjdDox", "name": variables.get("project") or "uncategorized"}
            project["entity"] = {"id": "RW50aXR5OjE=", "name": variables.get("entity") or self.entity}
            bucket = {"id": f"run:{name}", "name": name, "displayName": variables.get("displayName") or name}
            bucket |= {"description": "", "config": "{}", "sweepName": variables.get("sweep")}
            bucket |= {"project": project, "historyLineCount": 0}
            return {"data": {"upsertBucket": {"bucket": bucket, "inserted": True}}}
        if operation == "CreateRunFiles":
            files = [{"name": f, "uploadUrl": f"{url}/upload/{variables['run']}/{f}"} for f in variables["files"]]
            return {
                "data": {"createRunFiles": {"runID": f"run:{variables['run']}", "uploadHeaders": [], "files": files}}
            }
        if operation == "ServerFeaturesQuery":
            return {"data": {"serverInfo": {"features": []}}}
        return {"data": {}}  # queries wandb-core can do without (organization, artifacts...)

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        query, variables = request["query"], request.get("variables") or {}
        with self.lock:
            if "RunFiles" in query or "RunHistory" in query or "query Run(" in query:
                return self._run(query, variables)
            if "SweepRuns" in query:
                key = f"{variables.get('entity') or self.entity}/{variables['project']}/{variables['sweep']}"
                if key not in self.sweep_runs:
                    return {"data": {"project": {"sweep": None}}}
                edges = [{"node": {"name": r}} for r in self.sweep_runs[key]]
                page = {"edges": edges, "pageInfo": {"hasNextPage": False, "endCursor": None}}
                return {"data": {"project": {"sweep": {"name": variables["sweep"], "runs": page}}}}
            if "viewer" in query:
                viewer = {"id": "VXNlcjox", "entity": self.entity, "username": "u", "email": "u@example.com"}
                return {"data": {"viewer": viewer | {"flags": "{}", "teams": {"edges": []}}}}
            if "upsertSweep" in query:
                if self.graphql_error:
                    return {"errors": [{"message": self.graphql_error}]}
                name = f"swp{len(self.sweeps):05d}"
                self.sweeps.append({"name": name, **variables, "parsed": yaml.safe_load(variables["config"])})
                project = variables.get("projectName") or "uncategorized"
                entity = variables.get("entityName") or self.entity
                filed = {"name": project, "entity": {"name": entity}}
                return {
                    "data": {"upsertSweep": {"sweep": {"name": name, "project": filed}, "configValidationWarnings": []}}
                }
            if "createAgent" in query:
                agent_id = f"agent-{len(self.agents)}"
                self.agents.append({"id": agent_id, **variables})
                return {"data": {"createAgent": {"agent": {"id": agent_id}}}}
            if "agentHeartbeat" in query:
                return {
                    "data": {
                        "agentHeartbeat": {
                            "agent": {"id": variables["id"]},
                            "commands": json.dumps(self._commands(variables)),
                        }
                    }
                }
        return {"errors": [{"message": f"unknown operation: {query[:60]}"}]}

    def _run(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        entity = variables.get("entity") or self.entity
        key = f"{entity}/{variables['project']}/{variables['run']}"
        stored = self.stored.get(key) or self.any_run
        if stored is None:
            return {"data": {"project": {"run": None}}}
        if "RunFiles" in query:
            names = sorted(stored.files)
            # Two pages, to exercise paging: the first file, then the rest.
            start = int(variables.get("after") or 0)
            stop = 1 if start == 0 else len(names)
            edges = [{"node": {"name": n, "directUrl": f"/files/{key}/{n}", "sizeBytes": len(stored.files[n])}}
                     for n in names[start:stop]]  # fmt: skip
            page = {"edges": edges, "pageInfo": {"hasNextPage": stop < len(names), "endCursor": str(stop)}}
            return {"data": {"project": {"run": {"files": page}}}}
        if "RunHistory" in query:
            return {"data": {"project": {"run": {"history": [json.dumps(row) for row in stored.history]}}}}
        node = {
            "name": variables["run"],
            "displayName": variables["run"],
            "state": stored.state,
            "config": json.dumps({k: {"value": v} for k, v in stored.config.items()}),
            "summaryMetrics": json.dumps(stored.summary),
        }
        return {"data": {"project": {"run": node}}}

    def _commands(self, variables: dict[str, Any]) -> list[dict[str, Any]]:
        running: dict[str, bool] = json.loads(variables.get("runState") or "{}")
        self.heartbeats.append((variables["id"], running))
        if self.scripted:
            return self.scripted.pop(0)
        stops = [{"type": "stop", "run_id": r} for r in running if r in self.stop_runs]
        if stops:
            return stops
        if running:
            return []
        if self.proposals:
            params = self.proposals.pop(0)
            run_id = f"run{len(self.launched):03d}"
            self.launched.append({"run_id": run_id, "agent": variables["id"], "params": params})
            return [{"type": "run", "run_id": run_id, "args": {k: {"value": v} for k, v in params.items()}}]
        return [{"type": "exit"}] if self.exit_when_done else []


def _handler(fake: FakeWandb) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            fake.auth.append(self.headers.get("Authorization"))
            if not self._authorized():
                self._send(401, {"errors": [{"message": "bad key"}]})
                return
            prefix = "/files/"
            if not self.path.startswith(prefix):
                self._send(404, {"error": "no such page"})
                return
            entity, project, run_id, name = self.path[len(prefix) :].split("/", 3)
            stored = fake.stored.get(f"{entity}/{project}/{run_id}") or fake.any_run
            if stored is None or name not in stored.files:
                self._send(404, {"error": "no such file"})
                return
            if name in fake.broken_files:
                self._send(500, {"error": "scripted"})
                return
            fake.downloads.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(stored.files[name])))
            self.end_headers()
            self.wfile.write(stored.files[name])

        def _authorized(self) -> bool:
            given = self.headers.get("Authorization")
            return any(given == "Basic " + base64.b64encode(f"api:{k}".encode()).decode() for k in (KEY, LONG_KEY))

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if not self.path.startswith(("/graphql", "/sdk/")):  # a run's file_stream
                self._run_files(raw)
                return
            try:
                body = json.loads(raw)
            except ValueError:  # wandb's own clients send a few other requests; only GraphQL is served
                self._send(400, {"errors": [{"message": "not a GraphQL request"}]})
                return
            fake.auth.append(self.headers.get("Authorization"))
            if fake.hang:
                fake.released.wait(60)
                return
            if fake.status is not None:
                self._send(fake.status, {"error": "scripted"})
                return
            if body.get("operationName") in RUN_OPERATIONS:
                self._run_operation(body["operationName"], body.get("variables") or {})
                return
            if "createAgent" in body["query"] and fake.fail_agents:
                self._send(503, {"error": "scripted"})
                return
            limit = fake.fail_heartbeats_after
            if "agentHeartbeat" in body["query"] and limit is not None and len(fake.heartbeats) >= limit:
                fake.heartbeats.append(("failed", {}))
                self._send(500, {"error": "scripted"})
                return
            if not self._authorized():
                self._send(401, {"errors": [{"message": "bad key"}]})
                return
            self._send(200, fake.answer(body))

        def do_PUT(self) -> None:
            self._run_files(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

        def _run_operation(self, operation: str, variables: dict[str, Any]) -> None:
            run = variables.get("name") or variables.get("run")
            fake.record(operation, variables, run)
            if not self._authorized():
                self._send(401, {"errors": [{"message": "bad key"}]})
                return
            if operation == "UpsertBucket":
                with fake.lock:
                    fault = fake.bucket_faults.pop(0) if fake.bucket_faults else None
                if fault == "hang":
                    fake.released.wait(60)
                    return
                if isinstance(fault, int):
                    self._send(fault, {"errors": [{"message": f"scripted {fault}"}]})
                    return
            host, port = self.server.server_address[:2]
            self._send(200, fake.run_answer(operation, variables, f"http://{host!s}:{port}"))

        def _run_files(self, raw: bytes) -> None:
            parts = self.path.strip("/").split("/")
            if self.path.endswith("/file_stream"):  # /files/<entity>/<project>/<run>/file_stream
                fake.record("file_stream", json.loads(raw or b"{}"), parts[3])
                if fake.hang_file_stream:
                    fake.released.wait(60)
                    return
            else:
                fake.record("upload", {"path": self.path}, parts[1] if len(parts) > 1 else None)
            self._send(200, {})

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@contextmanager
def serve(fake: FakeWandb) -> Iterator[str]:
    """Serve ``fake`` on a free local port; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        fake.released.set()
        server.shutdown()
        server.server_close()
