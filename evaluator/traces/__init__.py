"""Expert-load traces written by real systems and studies, read into ``[T, L, E]`` windows.

One format per module of this package (:mod:`.base` says what a format is); every module
is imported, so a new format is one new module.

Every loader first produces per-record loads ``[S, L, E]`` (a record is a step or a
dump); :func:`load_trace` then sums consecutive groups of ``window`` records into
windows and checks the result. Supported (layouts and versions: docs/traces.md):

* JSON load history ``{"load_history": [{"logical_expert_load": [[...] per layer]}, ...]}``
  (one entry per step; default window 100 steps);
* dense arrays ``[S, L, E]`` or ``[L, E]`` in ``.npy``, ``.npz`` (first array, or key
  ``load``/``logical_count``), ``.pt`` (a tensor), and long-form CSV
  ``step,layer,expert,load``;
* SGLang expert-distribution dumps (``.pt``): ``stat`` mode ``{"logical_count": [S, L, E]}``,
  ``per_pass`` mode ``{"records": [{"global_physical_count": [L, R]}, ...],
  "last_physical_to_logical_map": [L, R]}``; and ``--init-expert-location`` JSON with
  ``logical_count``;
* TensorRT-LLM ExpertStatistic directories: ``meta_info.json`` plus
  ``rank{r}.safetensors`` with keys ``"{iter}_{layer}"`` (summed over ranks);
* vLLM's proposed JSONL ``eplb_load_stats`` records (physical loads mapped back
  through ``p2l_map``).

Layers that carry no load anywhere in the trace (dense layers in SGLang and TRT-LLM
dumps) are dropped. Bad files raise :class:`TraceError` naming the file and the place.
"""

import importlib
import pkgutil

from evaluator.traces.base import TRACE_FORMATS, TraceError, TraceFormat, check_loads, load_trace, read_records

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["TRACE_FORMATS", "TraceError", "TraceFormat", "check_loads", "load_trace", "read_records"]
