"""A small client of the W&B server's GraphQL API and file store for reading finished runs back, with a timeout on
every call and no prompt, service process or retry loop: what the download helpers need, and no more.

wandb's public ``Api`` retries for long stretches and starts a service process; a task that downloads a run's
files on a cluster needs an answer within a bound instead, and a clear error when the key or the run is wrong.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urljoin, urlparse

from ..planning import check_seconds
from ..run import MissingApiKeyError, api_key, wandb_base_url

__all__ = [
    "RemoteFile",
    "RemoteRun",
    "WandbApi",
    "WandbApiAuthError",
    "WandbApiError",
    "WandbApiUnreachable",
    "WandbRunNotFound",
]

_AGENT: Final = "flyteplugins-wandb"
_PAGE: Final = 100
# A run with more files than this is not read to the end: a bound on the number of calls, not only on each call.
_MAX_PAGES: Final = 1000
_RUN: Final = """
query Run($entity: String, $project: String!, $run: String!) {
  project(name: $project, entityName: $entity) {
    run(name: $run) { name displayName state config summaryMetrics }
  }
}"""
_FILES: Final = """
query RunFiles($entity: String, $project: String!, $run: String!, $first: Int, $after: String) {
  project(name: $project, entityName: $entity) {
    run(name: $run) {
      files(first: $first, after: $after) {
        edges { node { name directUrl url sizeBytes } }
        pageInfo { hasNextPage endCursor }
      }
    }
  }
}"""
_HISTORY: Final = """
query RunHistory($entity: String, $project: String!, $run: String!, $samples: Int) {
  project(name: $project, entityName: $entity) { run(name: $run) { history(samples: $samples) } }
}"""
_SWEEP_RUNS: Final = """
query SweepRuns($entity: String, $project: String!, $sweep: String!, $first: Int, $after: String) {
  project(name: $project, entityName: $entity) {
    sweep(sweepName: $sweep) {
      name
      runs(first: $first, after: $after) { edges { node { name } } pageInfo { hasNextPage endCursor } }
    }
  }
}"""
_VIEWER: Final = "query Viewer { viewer { id entity } }"


class WandbApiError(RuntimeError):
    """The W&B server answered, but not with what was asked (an error it reported, or a malformed reply)."""


class WandbApiUnreachable(WandbApiError):
    """No answer within the timeout: refused, unresolvable, timed out, or a server-side (5xx) failure."""


class WandbApiAuthError(WandbApiError):
    """The server refused the API key (HTTP 401/403)."""


class WandbRunNotFound(WandbApiError, LookupError):
    """The server knows no such run (or sweep) in that entity and project."""


@dataclass(frozen=True)
class RemoteFile:
    name: str
    url: str
    size: int | None


@dataclass(frozen=True)
class RemoteRun:
    """A run as the server holds it: id, state, config and summary (decoded JSON)."""

    entity: str | None
    project: str
    run_id: str
    display_name: str | None
    state: str | None
    config: dict[str, Any]
    summary: dict[str, Any]


class WandbApi:
    """One W&B server (``WANDB_BASE_URL``, else W&B's cloud) with one API key; every call returns or raises within
    ``timeout`` seconds per network operation."""

    def __init__(self, base_url: str, key: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = check_seconds("timeout", timeout)
        self._auth = "Basic " + base64.b64encode(f"api:{key}".encode()).decode()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, *, timeout: float = 30.0) -> WandbApi:
        """The server and key this process would use; :class:`MissingApiKeyError` without a key (never a prompt)."""
        base_url = wandb_base_url(environ)
        key = api_key(environ, base_url)
        if key is None:
            raise MissingApiKeyError(
                f"reading W&B runs from {base_url} needs an API key, and none was found: set WANDB_API_KEY (on "
                'Flyte, a secret: TaskEnvironment(..., secrets=flyte.Secret(key="wandb_api_key", '
                'as_env_var="WANDB_API_KEY"))) or log in with `wandb login`'
            )
        return cls(base_url, key, timeout=timeout)

    def _open(self, request: urllib.request.Request, what: str, timeout: float | None = None) -> bytes:
        """The body of the answer to ``request``, within ``timeout`` (else the client's) seconds per network
        operation; every failure is one of this module's errors, naming the server and ``what`` was asked."""
        request.add_header("Authorization", self._auth)
        request.add_header("User-Agent", _AGENT)
        limit = self.timeout if timeout is None else timeout
        why = f" ({what})" if what else ""
        try:
            with urllib.request.urlopen(request, timeout=limit) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as e:
            if e.code in (401, 403):
                raise WandbApiAuthError(
                    f"{self.base_url} refused the W&B API key (HTTP {e.code}){why}; check WANDB_API_KEY"
                ) from None
            if e.code == 404:
                raise WandbRunNotFound(
                    f"{self.base_url} answered HTTP 404: nothing at {request.full_url}{why}"
                ) from None
            if e.code >= 500 or e.code == 429:
                raise WandbApiUnreachable(f"{self.base_url} answered HTTP {e.code}{why}") from None
            raise WandbApiError(f"{self.base_url} answered HTTP {e.code}{why}: {_text(e.read())}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise WandbApiUnreachable(f"no answer from {self.base_url} within {limit:g}s{why} ({reason})") from None

    def _call(
        self, query: str, variables: Mapping[str, Any], what: str = "", timeout: float | None = None
    ) -> dict[str, Any]:
        """The ``data`` of a GraphQL call; an error the server reports is raised with its message."""
        body = json.dumps({"query": query, "variables": dict(variables)}).encode()
        request = urllib.request.Request(
            f"{self.base_url}/graphql", data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        raw = self._open(request, what, timeout)
        why = f" ({what})" if what else ""
        try:
            reply = json.loads(raw)
        except json.JSONDecodeError:
            raise WandbApiError(f"{self.base_url} sent a reply that is not JSON{why}: {_text(raw)}") from None
        if not isinstance(reply, dict):
            raise WandbApiError(f"{self.base_url} sent an unexpected reply{why}: {_text(raw)}")
        if reply.get("errors"):
            messages = "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in reply["errors"])
            raise WandbApiError(f"{self.base_url} reported: {messages}{why}")
        data = reply.get("data")
        if not isinstance(data, dict):
            raise WandbApiError(f"{self.base_url} sent no data{why}: {_text(raw)}")
        return data

    def default_entity(self, timeout: float | None = None) -> str | None:
        """The entity the key belongs to by default (within ``timeout`` seconds, else the client's)."""
        viewer = self._call(_VIEWER, {}, "asking who the key belongs to", timeout).get("viewer")
        if not isinstance(viewer, dict):
            raise WandbApiAuthError(f"{self.base_url} knows no user for the W&B API key; check WANDB_API_KEY")
        return str(viewer["entity"]) if viewer.get("entity") else None

    def _run_node(self, query: str, entity: str | None, project: str, run_id: str, **more: Any) -> dict[str, Any]:
        where = f"{entity or '<default entity>'}/{project}/{run_id}"
        data = self._call(query, {"entity": entity, "project": project, "run": run_id, **more}, f"for run {where}")
        run = (data.get("project") or {}).get("run")
        if not isinstance(run, dict):
            raise WandbRunNotFound(f"{self.base_url} has no run {run_id!r} in project {where.rsplit('/', 1)[0]}")
        return run

    def run(self, entity: str | None, project: str, run_id: str) -> RemoteRun:
        node = self._run_node(_RUN, entity, project, run_id)
        return RemoteRun(
            entity=entity,
            project=project,
            run_id=str(node.get("name") or run_id),
            display_name=node.get("displayName"),
            state=node.get("state"),
            config=_json_field(node.get("config")),
            summary=_json_field(node.get("summaryMetrics")),
        )

    def files(self, entity: str | None, project: str, run_id: str) -> Iterator[RemoteFile]:
        after: str | None = None
        for _ in range(_MAX_PAGES):
            node = self._run_node(_FILES, entity, project, run_id, first=_PAGE, after=after)
            page = node.get("files") or {}
            for edge in page.get("edges") or []:
                f = (edge or {}).get("node") or {}
                url = f.get("directUrl") or f.get("url")
                if f.get("name") and url:
                    yield RemoteFile(str(f["name"]), urljoin(self.base_url + "/", str(url)), f.get("sizeBytes"))
            info = page.get("pageInfo") or {}
            if not info.get("hasNextPage"):
                return
            after = info.get("endCursor")

    def history(self, entity: str | None, project: str, run_id: str, samples: int = 100_000) -> list[dict[str, Any]]:
        rows = self._run_node(_HISTORY, entity, project, run_id, samples=samples).get("history") or []
        return [r if isinstance(r, dict) else json.loads(r) for r in rows]

    def download(self, file: RemoteFile, root: Path) -> Path:
        """Write ``file`` under ``root`` (at its name, which may hold directories); never outside ``root``."""
        target = (root / file.name).resolve()
        if root.resolve() not in target.parents:
            raise WandbApiError(f"{self.base_url} named a file outside the run directory: {file.name!r}")
        # A signed storage URL carries its own credentials; only the W&B server itself gets the key.
        request = urllib.request.Request(file.url, method="GET")
        if urlparse(file.url).netloc != urlparse(self.base_url).netloc:
            data = _fetch_unauthenticated(request, self.timeout, file.name)
        else:
            data = self._open(request, f"downloading {file.name}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return target

    def sweep_runs(self, entity: str | None, project: str, sweep_id: str) -> list[str]:
        """The ids of a sweep's runs."""
        ids: list[str] = []
        after: str | None = None
        for _ in range(_MAX_PAGES):
            data = self._call(
                _SWEEP_RUNS,
                {"entity": entity, "project": project, "sweep": sweep_id, "first": _PAGE, "after": after},
                f"for sweep {sweep_id}",
            )
            sweep = (data.get("project") or {}).get("sweep")
            if not isinstance(sweep, dict):
                raise WandbRunNotFound(f"{self.base_url} has no sweep {sweep_id!r} in project {entity}/{project}")
            page = sweep.get("runs") or {}
            ids.extend(str(e["node"]["name"]) for e in page.get("edges") or [] if (e or {}).get("node"))
            info = page.get("pageInfo") or {}
            if not info.get("hasNextPage"):
                break
            after = info.get("endCursor")
        return ids


def _fetch_unauthenticated(request: urllib.request.Request, timeout: float, name: str) -> bytes:
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return bytes(response.read())
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        raise WandbApiUnreachable(f"could not download {name} within {timeout:g}s: {e}") from None


def _json_field(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise WandbApiError(f"the server sent a field that is not JSON: {_text(value.encode())}") from None
    return dict(value) if isinstance(value, Mapping) else {}


def _text(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    return text if len(text) <= 300 else text[:300] + "..."
