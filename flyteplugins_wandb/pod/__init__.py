"""What a pod keeps beyond one process: the node's detached W&B service, the ledger of runs its processes
opened (``RunRecord``), and the run files saved to Flyte storage so that they outlive the pod.

May import ``plan`` and ``_keys``.
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._live_copy import LiveSaving as LiveSaving
    from ._live_copy import assemble_parts as assemble_parts
    from ._live_copy import save_every as save_every
    from ._live_copy import start_live_copy as start_live_copy
    from ._manifest import RunRecord as RunRecord
    from ._manifest import collecting as collecting
    from ._manifest import collecting_unfinished as collecting_unfinished
    from ._manifest import read_manifest as read_manifest
    from ._manifest import read_unfinished as read_unfinished
    from ._manifest import record_next_step as record_next_step
    from ._manifest import record_run as record_run
    from ._manifest import record_unfinished as record_unfinished
    from ._manifest import recorded_next_step as recorded_next_step
    from ._manifest import writer_label as writer_label
    from ._node_service import join_pod_services as join_pod_services
    from ._node_service import join_writer_service as join_writer_service
    from ._node_service import node_service as node_service
    from ._node_service import open_run as open_run
    from ._node_service import started_beside_workers as started_beside_workers
    from ._node_service import writer_services as writer_services
    from ._run_files import runs_to_save as runs_to_save
    from ._run_files import save_run_files as save_run_files

__all__, __getattr__, __dir__ = lazy_exports(__name__, __file__)
