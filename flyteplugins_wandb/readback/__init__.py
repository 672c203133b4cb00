"""Reading runs back: the bounded W&B API client and downloads, the ``wandb`` CLI beside this
interpreter (``leet inspect``, ``sync``), and the report tab's rows and HTML built from what runs wrote locally.

May import ``run``, ``pod``, ``plan`` and ``_keys``.
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._downloads import RunAddress as RunAddress
    from ._downloads import default_root as default_root
    from ._downloads import download_run as download_run
    from ._downloads import download_wandb_run_dir as download_wandb_run_dir
    from ._downloads import download_wandb_run_logs as download_wandb_run_logs
    from ._downloads import traced as traced
    from ._local_runs import DownloadError as DownloadError
    from ._report import TAB_NAME as TAB_NAME
    from ._report import render_report as render_report
    from ._report_read import build_view as build_view
    from ._report_read import out_of_reach as out_of_reach
    from ._report_read import read_writers as read_writers
    from ._wandb_api import WandbApi as WandbApi
    from ._wandb_api import WandbApiAuthError as WandbApiAuthError
    from ._wandb_api import WandbApiError as WandbApiError
    from ._wandb_api import WandbApiUnreachable as WandbApiUnreachable
    from ._wandb_api import WandbRunNotFound as WandbRunNotFound
    from ._wandb_cli import leet_inspect as leet_inspect
    from ._wandb_cli import wandb_cli as wandb_cli

__all__, __getattr__, __dir__ = lazy_exports(__name__, __file__)
