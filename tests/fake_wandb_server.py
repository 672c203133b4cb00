"""A fake W&B server at the HTTP seam: the GraphQL operations of W&B's sweep protocol (viewer, upsertSweep,
createAgent, agentHeartbeat), on a local port, with a scripted controller and fault switches.

Only the sweep control plane is faked: there is no W&B server here, and the trials' runs log offline."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml

KEY = "fake-key-0123456789"


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
    sweeps: list[dict[str, Any]] = field(default_factory=list)
    agents: list[dict[str, Any]] = field(default_factory=list)
    heartbeats: list[tuple[str, dict[str, bool]]] = field(default_factory=list)
    launched: list[dict[str, Any]] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    released: threading.Event = field(default_factory=threading.Event)

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        query, variables = request["query"], request.get("variables") or {}
        with self.lock:
            if "viewer" in query:
                return {"data": {"viewer": {"id": "VXNlcjox", "entity": self.entity}}}
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

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            fake.auth.append(self.headers.get("Authorization"))
            if fake.hang:
                fake.released.wait(60)
                return
            if fake.status is not None:
                self._send(fake.status, {"error": "scripted"})
                return
            if "createAgent" in body["query"] and fake.fail_agents:
                self._send(503, {"error": "scripted"})
                return
            limit = fake.fail_heartbeats_after
            if "agentHeartbeat" in body["query"] and limit is not None and len(fake.heartbeats) >= limit:
                fake.heartbeats.append(("failed", {}))
                self._send(500, {"error": "scripted"})
                return
            expected = "Basic " + base64.b64encode(f"api:{KEY}".encode()).decode()
            if self.headers.get("Authorization") != expected:
                self._send(401, {"errors": [{"message": "bad key"}]})
                return
            self._send(200, fake.answer(body))

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
