"""Long-form CSV ``step,layer,expert,load``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluator.traces.base import TRACE_FORMATS, TraceError, TraceFormat


@TRACE_FORMATS.register("csv")
@dataclass(frozen=True)
class LongCsvTrace(TraceFormat):
    suffixes = ('.csv',)
    directory = False

    def read(self, path: Path, num_experts: int | None) -> tuple[np.ndarray, int]:
        return _load_csv(path)


def _load_csv(path: Path) -> tuple[np.ndarray, int]:
    import pandas as pd

    try:
        df = pd.read_csv(path)
    except Exception as exc:  # pandas raises several parser errors
        raise TraceError(f"{path}: not readable CSV: {exc.__class__.__name__}") from None
    missing = {"step", "layer", "expert", "load"} - set(df.columns)
    if missing:
        raise TraceError(f"{path}: CSV lacks column(s) {', '.join(sorted(missing))}")
    for col in ("step", "layer", "expert"):
        if not pd.api.types.is_integer_dtype(df[col]) or (df[col] < 0).any():
            raise TraceError(f"{path}: column {col} must hold non-negative integers")
    load = pd.to_numeric(df["load"], errors="coerce")
    bad = load.isna() & df["load"].notna()
    if bad.any():
        raise TraceError(f"{path}: line {int(bad.idxmax()) + 2}: load {df['load'][bad.idxmax()]!r} is not a number")
    out = np.zeros((df["step"].max() + 1, df["layer"].max() + 1, df["expert"].max() + 1))
    # A NaN load stays NaN in the sum, so check_loads reports where it is.
    np.add.at(out, (df["step"].to_numpy(), df["layer"].to_numpy(), df["expert"].to_numpy()), load.to_numpy())
    return out, 1
