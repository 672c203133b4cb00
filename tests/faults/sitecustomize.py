"""Test-side hooks, loaded by Python at start-up when this directory is on PYTHONPATH (pods and elastic workers).

Recording (``FAULT_LOG=<file>``): every call of ``wandb.init`` and ``Run.finish`` appends one JSON line with the
process's rank, the times of the call and of its return, and for init the keyword arguments and the layout fields
of its ``wandb.Settings``: a test reads what each process really passed to W&B, and when.

Faults, only for what a W&B server cannot cause (faults of the server itself are made by the fake server of
``tests/fake_wandb_server.py``): a fault bound to one *rank*. All writers of a shared run talk to one server, which
cannot tell the primary's requests from the others'. ``FAULT_RANKS`` (comma list of RANK values, default all),
``FAULT_INIT_DELAY`` (seconds before the real init), ``FAULT_INIT_FAIL`` (raise instead of init).

The rank is read when the fault fires, not here: torch elastic sets ``RANK`` inside the spawned worker after its
interpreter has started.

FAULT_DETACHED_SERVICE_FAIL: wandb cannot start a detached wandb-core (its start raises, as when the binary or
its socket directory is unusable); a process's own service still starts. A fault of the pod process, not of a rank.
"""

import json
import os
import time

_HOOKED = ("FAULT_LOG", "FAULT_INIT_DELAY", "FAULT_INIT_FAIL")
_SETTINGS = ("mode", "x_label", "x_primary", "x_update_finish_state", "init_timeout", "x_stats_gpu_device_ids")


def _mine() -> bool:
    ranks = os.environ.get("FAULT_RANKS")
    return ranks is None or os.environ.get("RANK", "0") in ranks.split(",")


def _plain(value):
    try:
        json.dumps(value)
        return value
    except TypeError:
        return repr(value)


def _record(entry) -> None:
    with open(os.environ["FAULT_LOG"], "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")  # one short write per line: lines of several processes never interleave


if any(os.environ.get(k) for k in _HOOKED):
    import wandb

    _real_init = wandb.init

    def _init(*args, **kwargs):
        entry = {"event": "init", "rank": os.environ.get("RANK"), "pid": os.getpid(), "called": time.time()}
        settings = kwargs.get("settings")
        entry["kwargs"] = {k: _plain(v) for k, v in kwargs.items() if k not in ("settings", "config")}
        entry["settings"] = {k: _plain(getattr(settings, k, None)) for k in _SETTINGS} if settings else None
        try:
            if _mine() and os.environ.get("FAULT_INIT_FAIL"):
                entry["fault"] = "fail"
                raise wandb.errors.CommError("injected: the W&B server refused the run")
            if _mine() and os.environ.get("FAULT_INIT_DELAY"):
                entry["fault"] = "delay"
                delay = float(os.environ["FAULT_INIT_DELAY"])
                if os.environ.get("FAULT_LOG"):  # now: a call abandoned by its caller never records its end
                    _record({"event": "delay", "rank": entry["rank"], "at": time.time(), "until": time.time() + delay})
                time.sleep(delay)
            entry["started"] = time.time()
            run = _real_init(*args, **kwargs)
            entry["returned"] = time.time()
            return run
        except BaseException as e:
            entry["error"] = f"{type(e).__name__}: {e}"
            raise
        finally:
            if os.environ.get("FAULT_LOG"):
                _record(entry)

    wandb.init = _init

    if os.environ.get("FAULT_LOG"):
        from wandb.sdk.wandb_run import Run

        _real_finish = Run.finish

        def _finish(self, *args, **kwargs):
            entry = {"event": "finish", "rank": os.environ.get("RANK"), "pid": os.getpid(), "called": time.time()}
            try:
                return _real_finish(self, *args, **kwargs)
            finally:
                entry["returned"] = time.time()
                _record(entry)

        Run.finish = _finish

if os.environ.get("FAULT_DETACHED_SERVICE_FAIL"):
    from wandb.sdk.lib.service import service_process

    def _start_detached(*args, **kwargs):
        raise OSError("injected: wandb-core could not be started detached")

    service_process.start_detached = _start_detached
