"""Fault injection for tests, loaded by Python at start-up when this directory is on PYTHONPATH.

It stands in for a slow or broken W&B *server* (which cannot run here): the real ``wandb.init`` still runs unless
a failure is asked for. Variables: FAULT_RANKS (comma list of RANK values, default all), FAULT_INIT_DELAY
(seconds before the real init), FAULT_INIT_FAIL (raise instead of init), FAULT_FINISH_HANG (finish never returns).
"""

import os
import time

_ranks = os.environ.get("FAULT_RANKS")
_mine = _ranks is None or os.environ.get("RANK", "0") in _ranks.split(",")

if _mine and any(os.environ.get(k) for k in ("FAULT_INIT_DELAY", "FAULT_INIT_FAIL", "FAULT_FINISH_HANG")):
    import wandb
    from wandb.sdk.wandb_run import Run

    _real_init = wandb.init

    def _init(*args, **kwargs):
        if os.environ.get("FAULT_INIT_FAIL"):
            raise wandb.errors.CommError("injected: the W&B server refused the run")
        time.sleep(float(os.environ.get("FAULT_INIT_DELAY") or 0))
        return _real_init(*args, **kwargs)

    wandb.init = _init

    if os.environ.get("FAULT_FINISH_HANG"):

        def _finish(self, *args, **kwargs):
            time.sleep(3600)

        Run.finish = _finish
