"""Agents of an online W&B sweep, inside the driver task: the server proposes, Flyte tasks run the trials.

Each agent is registered with the server like ``wandb agent`` and runs one trial at a time as a Flyte task, sending
heartbeats while it runs (the server uses them to tell live agents from dead ones, and answers with ``stop`` when
hyperband cuts the trial). Every server call is bounded; a server that stops answering ends the agents (trials in
flight finish) instead of holding the driver.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from ..planning import check_seconds
from ._server import SweepServer, SweepServerAuthError, SweepServerError
from ._trials import Trial, store_outcome

__all__ = ["AgentPolicy", "run_agents"]

logger = logging.getLogger("flyteplugins_wandb")

T = TypeVar("T")
# A run command's parameters arrive as {name: {"value": v}}.
_VALUE: Final = "value"


@dataclass(frozen=True)
class AgentPolicy:
    """How patient the agents are with the server."""

    heartbeat_interval: float = 5.0
    """Seconds between heartbeats, idle or while a trial runs (W&B's agent uses 5)."""
    max_failures: int = 6
    """Heartbeats in a row that may fail (no answer, server error) before an agent gives up."""
    idle_timeout: float = 600.0
    """Seconds an idle agent waits for the server to send a run before it gives up."""
    call_timeout: float = 30.0
    """Bound on one server call, whatever the network does."""

    def __post_init__(self) -> None:
        for name in ("heartbeat_interval", "idle_timeout", "call_timeout"):
            check_seconds(name, getattr(self, name))
        if isinstance(self.max_failures, bool) or not isinstance(self.max_failures, int) or self.max_failures < 1:
            raise ValueError(f"max_failures must be a positive int, got {self.max_failures!r}")


class _Budget:
    def __init__(self, count: int) -> None:
        self.left = count

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        return True


async def _call(policy: AgentPolicy, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    # urllib's timeout is per socket operation; wait_for bounds the whole call (the thread is abandoned).
    return await asyncio.wait_for(asyncio.to_thread(fn, *args, **kwargs), policy.call_timeout + 1)


def _params(command: Mapping[str, Any]) -> dict[str, Any]:
    args = command.get("args") or {}
    if not isinstance(args, Mapping):
        raise SweepServerError(f"run command with malformed args: {command!r}")
    return {k: v.get(_VALUE) if isinstance(v, Mapping) else v for k, v in args.items()}


class _Agent:
    def __init__(
        self,
        index: int,
        server: SweepServer,
        agent_id: str,
        policy: AgentPolicy,
        budget: _Budget,
        trials: list[Trial],
        launch: Callable[[Trial], Awaitable[Any]],
    ) -> None:
        self.index, self.server, self.agent_id, self.policy = index, server, agent_id, policy
        self.budget, self.trials, self.launch = budget, trials, launch
        self.queued: list[Mapping[str, Any]] = []
        self.failures = 0
        self.exit = False

    async def heartbeat(self, running: Mapping[str, bool]) -> list[dict[str, Any]] | None:
        """The server's commands, or None when it did not answer (counted; too many in a row end the agent)."""
        try:
            commands = await _call(self.policy, self.server.heartbeat, self.agent_id, running)
        except SweepServerAuthError:
            raise
        except (SweepServerError, TimeoutError) as e:
            self.failures += 1
            logger.warning("sweep agent %d: heartbeat failed (%d in a row): %s", self.index, self.failures, e)
            if self.failures >= self.policy.max_failures:
                logger.warning("sweep agent %d: the server stopped answering; the agent stops", self.index)
                self.exit = True
            return None
        self.failures = 0
        return commands

    def take(self, commands: list[dict[str, Any]], running: str | None) -> bool:
        """Act on commands; whether ``running`` was told to stop."""
        stop = False
        for command in commands:
            kind = command.get("type")
            if kind in ("run", "resume"):
                self.queued.append(command)
            elif kind == "stop":
                stop = stop or (running is not None and command.get("run_id") == running)
                self.queued = [c for c in self.queued if c.get("run_id") != command.get("run_id")]
            elif kind == "exit":
                self.exit = True
            else:
                logger.warning("sweep agent %d: ignoring unknown command %r", self.index, command)
        return stop

    async def next_run(self) -> Mapping[str, Any] | None:
        waited = 0.0
        while not self.queued:
            if self.exit:
                return None
            commands = await self.heartbeat({})
            if commands is not None:
                self.take(commands, None)
            if self.queued or self.exit:
                continue
            if waited >= self.policy.idle_timeout:
                logger.warning("sweep agent %d: no run from the server in %.0fs; the agent stops", self.index, waited)
                return None
            await asyncio.sleep(self.policy.heartbeat_interval)
            waited += self.policy.heartbeat_interval
        return self.queued.pop(0)

    async def run(self) -> None:
        # The budget is taken before asking, so the server hands out exactly as many runs as will be run.
        while not self.exit and self.budget.take():
            command = await self.next_run()
            if command is None:
                self.budget.left += 1
                return
            run_id = str(command.get("run_id") or "")
            try:
                if not run_id:
                    raise SweepServerError("no run_id")
                params = _params(command)
            except SweepServerError as e:
                self.budget.left += 1
                logger.warning("sweep agent %d: ignoring a malformed run command (%s): %r", self.index, e, command)
                continue
            trial = Trial(number=len(self.trials), params=params, run_id=run_id)
            self.trials.append(trial)
            await self.run_trial(trial, run_id)

    async def run_trial(self, trial: Trial, run_id: str) -> None:
        job = asyncio.ensure_future(self.launch(trial))
        stopped = False
        while not job.done():
            # Once the server is gone (or said exit), the trial in flight still runs to its end, unheard.
            await asyncio.wait({job}, timeout=None if self.exit else self.policy.heartbeat_interval)
            if job.done():
                break
            commands = await self.heartbeat({run_id: True})
            if commands is not None and self.take(commands, run_id) and not stopped:
                # Hyperband (or a user in the W&B UI) stopped this run: cancelling the awaited Flyte task aborts
                # it where Flyte can; the trial is recorded as stopped either way.
                logger.info("sweep agent %d: the server stopped run %s", self.index, run_id)
                stopped = True
                job.cancel()
        try:
            outcome = job.result()
        except asyncio.CancelledError:
            trial.status = "stopped"
            return
        except Exception as e:
            logger.warning("sweep agent %d: trial %d (run %s) failed: %s", self.index, trial.number, run_id, e)
            trial.status, trial.error = "failed", f"{type(e).__name__}: {e}"
            return
        try:
            store_outcome(trial, outcome)
        except ValueError as e:
            trial.status, trial.error = "failed", str(e)
            return
        trial.status = "stopped" if stopped else "complete"


async def run_agents(
    server: SweepServer,
    sweep_id: str,
    *,
    entity: str | None,
    project: str | None,
    parallel: int,
    count: int,
    launch: Callable[[Trial], Awaitable[Any]],
    policy: AgentPolicy,
    label: str,
) -> list[Trial]:
    """Run ``parallel`` agents of server sweep ``sweep_id`` until ``count`` trials were started, the server sends
    ``exit`` (grid done, sweep stopped), or it stops answering. The trials, in the order they started."""
    trials: list[Trial] = []
    budget = _Budget(count)
    host = f"{socket.gethostname()}:{label}"
    agents: list[_Agent] = []
    for i in range(parallel):
        try:
            agent_id = await _call(
                policy, server.register_agent, sweep_id, entity=entity, project=project, host=f"{host}:{i}"
            )
        except (SweepServerError, TimeoutError) as e:
            if isinstance(e, SweepServerAuthError) or not agents:
                raise
            logger.warning("sweep %s: agent %d could not register (%s); going on with %d", sweep_id, i, e, len(agents))
            break
        agents.append(_Agent(i, server, agent_id, policy, budget, trials, launch))
    await asyncio.gather(*(a.run() for a in agents))
    return trials
