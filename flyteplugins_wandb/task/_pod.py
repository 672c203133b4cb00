"""What the pod process of a decorated task does around the processes that open runs.

For an ``Elastic`` task on a cluster, the pod's own process runs ``TorchFunctionTask.execute``, which starts the
workers with torch elastic; ``@wandb_init``'s body wrapper runs only inside the workers. So the decorator also
hooks ``execute`` (:func:`hook_execute`): around the workers, the pod process holds one W&B service for the node
(:mod:`._node_service`) and a record of the workers' runs, and when they have ended it saves the run files that
must outlive the pod (:mod:`._run_files`). A task that is not distributed, or an Elastic task in Flyte's local
mode, opens its run in this process: :func:`body_scope` saves its files after the body.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Final

from .. import _keys as keys
from .._keys import POD_LEDGER_ENV
from ..planning import DistributedInfo, WandbConfig, decode_config, resolve

# The node service and the saving of run files are imported where they are used: every worker imports this module
# (its task function refers to it) and needs neither.
from ..pod import collecting, collecting_unfinished
from ..run import InitOptions, track

if TYPE_CHECKING:
    from ..pod import RunRecord

__all__ = ["POD_OPTIONS", "body_scope", "hook_execute", "pod_scope", "warn_if_restarts_share_a_store"]

logger = logging.getLogger("flyteplugins_wandb")

POD_OPTIONS: Final = "__flyteplugins_wandb_pod__"
"""Class attribute of a hooked task class: the decorator's options."""


def hook_execute(task: Any, options: InitOptions) -> None:
    """Run ``task.execute`` inside :func:`pod_scope`, changing ``task`` in place.

    The task's class is replaced by a subclass that overrides ``execute``: ``TaskEnvironment.tasks`` keeps the same
    object, and copies made with ``task.override(...)`` or ``dataclasses.replace`` keep the hook (an attribute on
    the instance would be dropped by them). The function that workers unpickle is not touched.
    """
    base = type(task)
    base_execute = base.execute

    async def execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        opts = getattr(type(self), POD_OPTIONS)
        elastic = getattr(self, "plugin_config", None)
        nproc = int(getattr(elastic, "nproc_per_node", 1) or 1)
        async with pod_scope(opts, nproc, max_restarts=int(getattr(elastic, "max_restarts", 0) or 0)):
            return await base_execute(self, *args, **kwargs)

    namespace = {
        "execute": execute,
        POD_OPTIONS: options,
        "__module__": base.__module__,
        "__qualname__": base.__qualname__,
        "__doc__": base.__doc__,
    }
    task.__class__ = type(base.__name__, (base,), namespace)


def warn_if_restarts_share_a_store(max_restarts: int, environ: Mapping[str, str] = os.environ) -> bool:
    """Warn (and return True) where torch elastic will restart workers into the store of their dead life.

    Torch (2.5 and later) keeps one store for the whole job unless ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1``, and
    the workers' ``init_process_group`` puts no restart in its keys: restarted ranks can read the addresses the
    dead life published and fail ("Gloo connectFullMesh failed ... Connection refused", or NCCL's
    "socketPollConnect ... refused"), with or without this plugin (pytorch/pytorch#135712, #167288). The plugin
    does not change torch's setting; it says so once per pod (README, "A worker that dies").
    """
    if max_restarts <= 0 or environ.get(keys.TORCH_DISABLE_SHARE_RDZV_TCP_STORE, "").strip() == "1":
        return False
    logger.warning(
        "Elastic(max_restarts=%d): torch elastic keeps one store for every restart of the workers, so a restarted "
        "worker may read the process-group addresses of the life that died and fail in init_process_group "
        "(pytorch/pytorch#135712); set %s=1 in the task's env_vars to give every restart a store of its own",
        max_restarts,
        keys.TORCH_DISABLE_SHARE_RDZV_TCP_STORE,
    )
    return True


@contextlib.asynccontextmanager
async def pod_scope(options: InitOptions, nproc_per_node: int, max_restarts: int = 0) -> AsyncIterator[None]:
    """Around the workers of an Elastic task in this pod: one W&B service for them, a record of their runs, and
    their run files saved once they have ended (task failed or not); and a warning where torch would restart the
    workers into their dead life's store (:func:`warn_if_restarts_share_a_store`). Nothing in Flyte's local mode,
    where there are no workers; only that warning when W&B is disabled."""
    import flyte

    from ..pod import (
        node_service,
        read_manifest,
        read_unfinished,
        runs_to_save,
        started_beside_workers,
        writer_services,
    )

    tctx = flyte.ctx()
    if not tctx or tctx.mode == "local":
        yield
        return
    warn_if_restarts_share_a_store(max_restarts)
    resolved = resolve(options.config, decode_config(tctx.custom_context), os.environ)
    if resolved.wandb_mode == "disabled":
        yield
        return
    # Writers of one run cannot share a service (wandb keys streams by run id): each gets one of its own.
    per_writer = resolved.layout.run_mode == "shared" and nproc_per_node > 1
    download_logs = resolved.config.download_logs is True
    with _ledger() as ledger:
        runs = lambda: runs_to_save(read_manifest(ledger), read_unfinished(ledger), download_logs)  # noqa: E731
        stop = options.finish_timeout

        def services(env: MutableMapping[str, str]) -> contextlib.AbstractContextManager[Any]:
            if per_writer:
                return writer_services(nproc_per_node, stop_timeout=stop, environ=env)
            return node_service(stop_timeout=stop, environ=env)

        handover = os.path.join(ledger, "services.json")
        with _saving(runs, stop, live=True), started_beside_workers(services, handover):
            yield


@contextlib.contextmanager
def _saving(runs: Callable[[], list[RunRecord]], finish_timeout: float, *, live: bool) -> Iterator[None]:
    """Save the files of ``runs()`` when the block has ended (task failed or not) and, with ``live``, while it
    runs too, so that a pod lost whole keeps what was logged (pod._live_copy); a bad period raises here, before
    the block starts."""
    import flyte

    from ..pod import LiveSaving, save_run_files, start_live_copy

    tctx = flyte.ctx()
    saving = LiveSaving(None)
    if live and tctx is not None:
        raw_data_path = str(getattr(tctx.raw_data_path, "path", "") or "")
        saving = start_live_copy(runs, raw_data_path, tctx.action.name, tctx.attempt_number)
    try:
        yield
    finally:
        saving.stop()
        chosen = runs()
        saving.finish(saved=save_run_files(chosen, settle_timeout=finish_timeout) is not None or not chosen)


@contextlib.contextmanager
def _ledger() -> Iterator[str]:
    """A directory of this pod's own where its workers record their runs (beside a user's manifest, which several
    pods of one machine may share)."""
    import shutil
    import tempfile

    path = tempfile.mkdtemp(prefix="wandb-pod-runs-")
    saved = os.environ.get(POD_LEDGER_ENV)
    os.environ[POD_LEDGER_ENV] = path
    try:
        yield path
    finally:
        if saved is None:
            os.environ.pop(POD_LEDGER_ENV, None)
        else:
            os.environ[POD_LEDGER_ENV] = saved
        shutil.rmtree(path, ignore_errors=True)


def body_scope(options: InitOptions) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    """The scope of a task body: the run (:func:`track`), then, in a process that is not a worker of a distributed
    task (which the pod process saves for), the run files that must outlive the pod."""

    @contextlib.contextmanager
    def scope() -> Iterator[Any]:
        if DistributedInfo.from_env(os.environ) is not None:
            with track(options) as run:
                yield run
            return
        import flyte

        from ..pod import runs_to_save

        tctx = flyte.ctx()
        download_logs = _download_logs(options)
        # Saved while the body runs too where this is a pod (Flyte's local mode has no pod to lose).
        live = tctx is not None and tctx.mode != "local"
        with collecting() as runs, collecting_unfinished() as unfinished:
            chosen = lambda: runs_to_save(list(runs), set(unfinished), download_logs)  # noqa: E731
            with _saving(chosen, options.finish_timeout, live=live), track(options) as run:
                yield run

    return scope


def _download_logs(options: InitOptions) -> bool:
    import flyte

    tctx = flyte.ctx()
    try:
        context = decode_config(tctx.custom_context) if tctx else WandbConfig()
    except ValueError:  # the body's own start has already reported it
        context = WandbConfig()
    return options.config.merged_over(context).download_logs is True
