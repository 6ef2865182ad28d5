"""Where contained tasks run: this machine's pool, or the workers of a Dask cluster (see :mod:`.base`)."""

from harness.executors.base import EXECUTORS, ClusterError, Executor, open_executor
from harness.executors.dask_cluster import DaskExecutor
from harness.executors.local import LocalExecutor

__all__ = ["EXECUTORS", "ClusterError", "DaskExecutor", "Executor", "LocalExecutor", "open_executor"]
