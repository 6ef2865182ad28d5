"""Trace loaders for each real format, their errors, and the t -> t+1 protocol on windows."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from evaluator.metrics import placement_balance
from evaluator.migration import migration
from evaluator.presets import get_preset
from evaluator.scoring import score_case
from evaluator.suites import Case
from evaluator.traces import TraceError, load_trace

ROOT = Path(__file__).resolve().parent.parent
MIX = get_preset("mixtral-8x7b")  # 32 layers x 8 experts
RNG = np.random.default_rng(0)
STEPS = RNG.integers(0, 50, (6, MIX.num_layers, MIX.num_experts))  # [S, L, E]


def expected(window: int) -> np.ndarray:
    n = len(STEPS) // window
    return STEPS[: n * window].reshape(n, window, *STEPS.shape[1:]).sum(axis=1)


def write_json_history(path: Path, steps=STEPS) -> Path:
    path.write_text(json.dumps({"load_history": [{"logical_expert_load": s.tolist()} for s in steps]}))
    return path


def test_json_history_sums_windows_of_steps(tmp_path):
    path = write_json_history(tmp_path / "expert-load.json")
    assert np.array_equal(load_trace(path, window=2), expected(2))
    assert np.array_equal(load_trace(path, window=3, num_layers=32, num_experts=8), expected(3))


@pytest.mark.parametrize("kind", ["npy3", "npy2", "npz", "pt", "csv"])
def test_dense_formats(tmp_path, kind):
    if kind == "npy3":
        np.save(path := tmp_path / "t.npy", STEPS)
        want = STEPS
    elif kind == "npy2":
        np.save(path := tmp_path / "t.npy", STEPS[0])
        want = STEPS[:1]
    elif kind == "npz":
        np.savez(path := tmp_path / "t.npz", load=STEPS)
        want = STEPS
    elif kind == "pt":
        torch.save(torch.from_numpy(STEPS), path := tmp_path / "t.pt")
        want = STEPS
    else:
        s, l, e = np.indices(STEPS.shape)
        lines = ["step,layer,expert,load"] + [f"{a},{b},{c},{v}" for a, b, c, v in
                                               zip(s.ravel(), l.ravel(), e.ravel(), STEPS.ravel(), strict=True)]
        (path := tmp_path / "t.csv").write_text("\n".join(lines))
        want = STEPS
    assert np.array_equal(load_trace(path, window=1), want)


def test_sglang_stat_dump_drops_dense_layers(tmp_path):
    counts = np.zeros((4, 35, 8), dtype=np.int32)  # first three model layers are dense: all zero
    counts[:, 3:] = STEPS[:4]
    torch.save({"rank": 0, "logical_count": torch.from_numpy(counts), "average_utilization_rate_over_window": None},
               path := tmp_path / "expert_distribution_recorder_1.pt")
    assert np.array_equal(load_trace(path, num_layers=32, num_experts=8), STEPS[:4])


def test_sglang_per_pass_maps_physical_counts_to_logical(tmp_path):
    p2l = np.tile(np.array([0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7]), (32, 1))
    records = [{"forward_pass_id": i, "rank": 0,
                "global_physical_count": torch.from_numpy(np.concatenate([STEPS[i], np.ones_like(STEPS[i])], 1))}
               for i in range(3)]
    torch.save({"records": records, "last_physical_to_logical_map": torch.from_numpy(p2l)}, path := tmp_path / "p.pt")
    assert np.array_equal(load_trace(path), STEPS[:3] + 1)


def test_trtllm_expert_statistic_sums_ranks(tmp_path):
    (tmp_path / "meta_info.json").write_text(json.dumps({"num_experts": 8, "num_experts_per_token": 2}))
    for rank in range(2):
        save_file({f"{it}_{layer + 3}": (STEPS[it, layer] * (rank + 1)).astype(np.int32)
                   for it in range(2) for layer in range(32)}, str(tmp_path / f"rank{rank}.safetensors"))
    assert np.array_equal(load_trace(tmp_path), STEPS[:2] * 3)


def test_vllm_jsonl_maps_slots_back_through_p2l(tmp_path):
    p2l = [[e % 8 for e in range(16)]] * 32
    lines = [json.dumps({"record_type": "eplb_load_stats", "version": 1, "step": i, "num_ranks": 4,
                         "expert_load": np.concatenate([STEPS[i], STEPS[i]], 1).tolist(), "p2l_map": p2l})
             for i in range(2)]
    (path := tmp_path / "eplb.jsonl").write_text("\n".join(lines))
    assert np.array_equal(load_trace(path, window=2), 2 * STEPS[:2].sum(axis=0, keepdims=True))


@pytest.mark.parametrize("corrupt, message", [
    (lambda h: h["load_history"][1]["logical_expert_load"][2].__setitem__(5, float("nan")),
     "NaN load at step 1, layer 2, expert 5"),
    (lambda h: h["load_history"][0]["logical_expert_load"][4].__setitem__(1, -3), "negative load at step 0, layer 4"),
    (lambda h: h["load_history"][3]["logical_expert_load"][7].pop(), r"load_history\[3\].*ragged rows .*\[7\] has 7"),
    (lambda h: h["load_history"][2].pop("logical_expert_load"), r"load_history\[2\] has no logical_expert_load"),
])
def test_bad_json_history_gets_a_clear_error(tmp_path, corrupt, message):
    history = {"load_history": [{"logical_expert_load": s.tolist()} for s in STEPS]}
    corrupt(history)
    (path := tmp_path / "bad.json").write_text(json.dumps(history).replace("NaN", "NaN"))
    with pytest.raises(TraceError, match=message) as err:
        load_trace(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_other_bad_files(tmp_path):
    np.save(inf := tmp_path / "inf.npy", np.where(STEPS == STEPS.max(), np.inf, STEPS))
    with pytest.raises(TraceError, match="infinite load"):
        load_trace(inf)
    (broken := tmp_path / "b.json").write_text("{not json")
    with pytest.raises(TraceError, match="not valid JSON"):
        load_trace(broken)
    with pytest.raises(TraceError, match="does not fit the preset's 58 x 256"):
        load_trace(write_json_history(tmp_path / "h.json"), window=1, num_layers=58, num_experts=256)
    with pytest.raises(TraceError, match="fewer than one window"):
        load_trace(write_json_history(tmp_path / "h.json"))  # 6 steps, default window 100
    (csv := tmp_path / "c.csv").write_text("step,layer,expert,load\n0,0,0,abc\n")
    with pytest.raises(TraceError, match="line 2: load 'abc' is not a number"):
        load_trace(csv)


def _terabyte_npy() -> bytes:
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (100000, 100000, 1000), }"
    header = header.ljust(118) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + bytes(64)


def _write_npz_member(path: Path, name: str, data: bytes) -> None:
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(name, data)


def _jsonl(p2l) -> str:
    return json.dumps({"record_type": "eplb_load_stats", "expert_load": [[1, 2]], "p2l_map": p2l}) + "\n"


# Each writes a bad file that used to raise an unhelpful exception or be silently misread.
BAD_FILES = {
    "empty.npy": (lambda p: p.write_bytes(b""), "not a readable .npy array"),
    "empty.npz": (lambda p: p.write_bytes(b""), "not a readable numpy file"),
    "terabytes.npy": (lambda p: p.write_bytes(_terabyte_npy()), "header claims 80000000000000 bytes"),
    "terabytes.npz": (lambda p: _write_npz_member(p, "load.npy", _terabyte_npy()), "array 'load': header claims"),
    "strings.npy": (lambda p: np.save(p, np.array([["1", "2"]])), "dtype <U1 is not a number type"),
    "complex.npy": (lambda p: np.save(p, np.ones((2, 3), dtype=complex)), "dtype complex128 is not a number"),
    "complex.pt": (lambda p: torch.save({"logical_count": torch.ones(2, 3, dtype=torch.complex64)}, p),
                   "logical_count: torch.complex64 values are not loads"),
    "no_map.pt": (lambda p: torch.save({"records": [{"global_physical_count": [[1, 2]]}]}, p),
                  "without last_physical_to_logical_map"),
    "records_int.pt": (lambda p: torch.save({"records": 5, "last_physical_to_logical_map": [[0, 1]]}, p),
                       "records must be a non-empty list"),
    "records_str.pt": (lambda p: torch.save({"records": [{"global_physical_count": "x"}],
                                             "last_physical_to_logical_map": [[0, 1]]}, p),
                       r"records\[0\].global_physical_count: not an array of numbers"),
    "records_ragged.pt": (lambda p: torch.save({"records": [{"global_physical_count": [[1, 2]]},
                                                            {"global_physical_count": [[1, 2, 3]]}],
                                                "last_physical_to_logical_map": [[0, 1]]}, p),
                          "counts of one shape"),
    "minus_one.jsonl": (lambda p: p.write_text(_jsonl([[0, -1]])), r"map entry \[0\]\[1\] = -1 is not an expert id"),
    "half.jsonl": (lambda p: p.write_text(_jsonl([[0, 0.5]])), r"map entry \[0\]\[1\] = 0.5 is not an expert id"),
    "too_big.jsonl": (lambda p: p.write_text(_jsonl([[0, 7]])), r"map entry \[0\]\[1\] = 7 is not an expert id"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_a_bad_file_is_refused_with_one_line_naming_it(tmp_path, name):
    write, message = BAD_FILES[name]
    write(path := tmp_path / name)
    with pytest.raises(TraceError, match=message) as err:
        load_trace(path, num_experts=2 if name.endswith(".jsonl") else None)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_protocol_places_on_window_t_and_scores_on_t_plus_1(tmp_path, baseline_rebalance):
    path = write_json_history(tmp_path / "h.json")
    case = Case.from_trace(str(path), "mixtral-8x7b", window=2)
    history = case.history()
    assert np.array_equal(history, expected(2)) and case.windows == 3
    seen = []

    def spy(weight, *args, **context):
        seen.append(weight.numpy().copy())
        return baseline_rebalance(weight, *args, **context)

    result = score_case(spy, history, MIX)
    assert [np.array_equal(s, w) for s, w in zip(seen, history, strict=True)] == [True] * 3
    placements = [baseline_rebalance(torch.from_numpy(w), *MIX.rebalance_args()) for w in history]
    phy2log = torch.cat([p[0] for p in placements[:-1]])
    logcnt = torch.cat([p[2] for p in placements[:-1]])
    want = placement_balance(torch.from_numpy(np.concatenate(history[1:])), phy2log, logcnt, 1, 1, 4)
    assert result["gpu_balancedness"] == pytest.approx(want.gpu_balancedness)
    pairs = zip(placements[:-1], placements[1:], strict=True)
    shares = [migration(a[0].numpy(), b[0].numpy(), 1, 4).copies_share for a, b in pairs]
    assert result["copies_moved_share"] == pytest.approx(sum(shares) / 2) and 0 <= result["copies_moved_share"] <= 1


@pytest.mark.slow
def test_evaluate_on_a_trace_from_the_command_line(tmp_path):
    path = write_json_history(tmp_path / "h.json")
    args = [sys.executable, "-m", "harness", "evaluate", str(ROOT / "candidates" / "vectorized_greedy.py"),
            "--trace", str(path), "--window", "2", "--db", f"sqlite:///{tmp_path}/h.db", "--out", str(tmp_path),
            "--quiet"]
    result = subprocess.run(args + ["--preset", "mixtral-8x7b"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "| vectorized_greedy" in result.stdout and "1 cases" in result.stdout
    # Layers and experts come from the trace: any deployment that holds 8 experts takes it.
    custom = subprocess.run(args + ["--deployment", "slots=12,gpus=6,nodes=2"], capture_output=True, text=True,
                            cwd=ROOT)
    assert custom.returncode == 0, custom.stderr
    assert "trace:h.json@[slots=12,gpus=6,nodes=2]/w2" in (tmp_path / "cases.csv").read_text()
    bad = subprocess.run(args + ["--deployment", "slots=6,gpus=4"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "6 slots are not a multiple of 4 GPUs; 6 slots are fewer than the 8 experts" \
        in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr


def test_synthetic_trace_is_labelled_reproducible_and_loadable(tmp_path):
    from evaluator.synthetic_traces import write_synthetic_trace

    a = write_synthetic_trace(tmp_path / "a.json", MIX, steps=300, seed=4)
    b = write_synthetic_trace(tmp_path / "b.json", MIX, steps=300, seed=4)
    raw = json.loads(a.read_text())
    assert raw["synthetic"] is True and raw["preset"] == "mixtral-8x7b"
    assert a.read_text() == b.read_text()
    windows = load_trace(a, num_layers=32, num_experts=8)  # default window: 100 steps
    assert windows.shape == (3, 32, 8) and (windows >= 0).all()
    # Heavy tails and drift: the hottest expert carries well above its share, and it moves.
    assert (windows.max(axis=2) / windows.mean(axis=2)).mean() > 1.5


def test_a_trace_edited_after_its_case_was_made_is_refused_when_read(tmp_path):
    path = tmp_path / "t.npy"
    np.save(path, np.ones((4, 2, 8)))
    case = Case.from_trace(str(path), deployment="slots=8,gpus=2,nodes=1")
    assert case.history().shape == (4, 2, 8)
    np.save(path, np.full((4, 2, 8), 2.0))
    with pytest.raises(TraceError, match="content changed since case"):
        case.history()
