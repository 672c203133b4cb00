"""Run a Flyte ``Elastic`` task on this machine with real torch elastic workers (``run_elastic_locally``), and
read back what its W&B runs wrote (``format_summary``).

- ``_launcher``: the agents that rendezvous on localhost, one per simulated node, and the result they hand back;
- ``_summary``: the plain-text table of the runs a launch made, read from their offline files.
"""

from .._keys import MANIFEST_ENV
from ..pod import RunRecord, read_manifest
from ._launcher import LocalElasticError, LocalElasticResult, pod_context, run_elastic_locally
from ._summary import format_runs, format_summary

__all__ = [
    "MANIFEST_ENV",
    "LocalElasticError",
    "LocalElasticResult",
    "RunRecord",
    "format_runs",
    "format_summary",
    "pod_context",
    "read_manifest",
    "run_elastic_locally",
]
