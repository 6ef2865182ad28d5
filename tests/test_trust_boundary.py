"""Hostile candidates, one per known reward hack, run as a user runs them (`eplb-harness evaluate`).

Every cheat must gain nothing: its scores equal the honest placement's it falls back to,
the harness survives and records what happened, the store is intact, nothing is left
running or on disk, and the API key in the harness's environment is written nowhere.
The whole set runs twice: as root (workers drop to ``nobody``) and on the path an
ordinary user gets (a user namespace; forced with ``EPLB_SANDBOX_USERNS=1``).
"""

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evaluator.suites import Case, get_suite
from harness import sandbox
from harness.candidate import baseline, from_source
from harness.runner import RunConfig, evaluate
from harness.store import Store

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-test-" + uuid.uuid4().hex
MARK = uuid.uuid4().hex[:12]
SLEEP_MARK = f"987.{int(MARK[:6], 16) % 999983}"  # a `sleep` duration no other process has

# The baseline's primitives and an honest policy built from them: every cheat falls back to it.
HONEST = baseline().source + textwrap.dedent("""
    import sys as _sys
    from harness.policy import compose_rebalance as _compose

    def _honest(weight, num_replicas, num_groups, num_nodes, num_gpus):
        return _compose(_sys.modules[__name__])(weight, num_replicas, num_groups, num_nodes, num_gpus)

    def _next_in(history, weight):  # the window after weight in history [T, L, E], or None
        w = weight.numpy()
        if getattr(history, "ndim", 0) == 3 and history.shape[1:] == w.shape:
            for t in range(len(history) - 1):
                if (history[t] == w).all():
                    return history[t + 1]
        return None

    def _proc_entries():  # what /proc lists, if the sandbox lets it be listed
        import os
        try:
            return os.listdir("/proc")
        except OSError:
            return []

    def _balanced_for(future, weight, *shape):  # the honest placement, for the next window if found
        if future is not None:
            weight = torch.from_numpy(future.copy())
        return _honest(weight, *shape)
""")

HOSTILE = {
    # 1. Replace the scorer's balance function wherever it can be found.
    "patches_scorer": """
        try:
            import evaluator.metrics as _m
            _m.balancedness = lambda loads: 0.999
        except Exception:
            pass
        for _name, _mod in list(_sys.modules.items()):
            if _name.split(".")[0] in ("evaluator", "harness") and hasattr(_mod, "balancedness"):
                _mod.balancedness = lambda loads: 0.999

        def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
            return _honest(weight, num_replicas, num_groups, num_nodes, num_gpus)
        """,
    # 2a. Walk the caller's frames (and the heap) for the history and balance for the next window.
    "walks_frames": """
        import gc
        import numpy as np

        def _future(weight):
            seen = []
            frame = _sys._getframe(1)
            while frame is not None:
                seen += list(frame.f_locals.values())
                frame = frame.f_back
            seen += [o for o in gc.get_objects() if isinstance(o, np.ndarray)]
            return next((f for f in (_next_in(v, weight) for v in seen) if f is not None), None)

        def rebalance_experts(weight, *shape):
            return _balanced_for(_future(weight), weight, *shape)
        """,
    # 2b. Regenerate the seeded synthetic workload and balance for the next window.
    "regenerates_workload": """
        import numpy as np

        def _future(weight):
            try:
                _sys.path.insert(0, ROOT)
                from evaluator.suites import get_suite
            except Exception:
                return None
            found = (_next_in(case.history(), weight) for case in get_suite("smoke"))
            return next((f for f in found if f is not None), None)

        def rebalance_experts(weight, *shape):
            return _balanced_for(_future(weight), weight, *shape)
        """,
    # 2c. Keep the returned tensors and rewrite window t's placement in place when called for t+1.
    "rewrites_returned_tensors": """
        _KEPT = []

        def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
            out = _honest(weight, num_replicas, num_groups, num_nodes, num_gpus)
            for old in _KEPT:
                if all(a.shape == b.shape for a, b in zip(old, out)):
                    for a, b in zip(old, out):
                        a.copy_(b)
            _KEPT.append(out)
            return out
        """,
    # 3. A result whose unpickling runs code, returned and put in place of the scorer's result.
    "returns_a_pickle_bomb": """
        import os

        class _Bomb:
            def __reduce__(self):
                return (os.system, (f"touch {MARKER}",))

        for _mod in list(_sys.modules.values()):
            if hasattr(_mod, "score_case"):
                _mod.score_case = lambda *a, **k: _Bomb()

        def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
            return _Bomb()
        """,
    # 4. Forge rows in the store, then delete it.
    "attacks_the_store": """
        import os
        import sqlite3

        def _attack():
            for path in (DB, DB + "-wal"):
                try:
                    con = sqlite3.connect(path)
                    con.execute("insert into candidates (id, name, source, origin, parent_ids, created_at) "
                                "values ('forged', 'forged', '', 'file', '[]', '2026-01-01')")
                    con.execute("delete from evaluations")
                    con.commit()
                except Exception:
                    pass
                try:
                    os.remove(path)
                except Exception:
                    pass

        def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
            _attack()
            return _honest(weight, num_replicas, num_groups, num_nodes, num_gpus)
        """,
    # 5. Kill the harness (its parent, its group, any harness process it can find).
    "kills_the_harness": """
        import os

        def _attack():
            targets = {os.getppid()}
            for entry in _proc_entries():
                try:
                    if entry.isdigit() and b"harness" in open(f"/proc/{entry}/cmdline", "rb").read():
                        targets.add(int(entry))
                except Exception:
                    pass
            for pid in targets - {os.getpid(), 0, 1}:
                for kill in (os.kill, os.killpg):
                    try:
                        kill(pid, 9)
                    except Exception:
                        pass

        def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
            _attack()
            return _honest(weight, num_replicas, num_groups, num_nodes, num_gpus)
        """,
    # 6. Find the API key and put it where the harness stores text.
    "steals_the_key": """
        import os

        def _find():
            found = [v for v in os.environ.values() if v.startswith("sk-")]
            for entry in ["self", "1"] + _proc_entries():
                try:
                    found += [v.decode() for v in open(f"/proc/{entry}/environ", "rb").read().split(b"\\0")
                              if b"sk-" in v]
                except Exception:
                    pass
            return found

        def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
            raise RuntimeError(f"found {_find()}")
        """,
    # 7. A 0.3 s policy that answers from a cache keyed by the input's identity or content.
    "memoises_timed_calls": """
        import time
        _CACHE = {}

        def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
            for key in (weight.data_ptr(), weight.numpy().tobytes()):
                if key in _CACHE:
                    return _CACHE[key]
            end = time.perf_counter() + 0.3
            while time.perf_counter() < end:
                pass
            out = _honest(weight, num_replicas, num_groups, num_nodes, num_gpus)
            _CACHE[weight.data_ptr()] = _CACHE[weight.numpy().tobytes()] = out
            return out
        """,
    # 8. Leave processes (a new session) and files behind.
    "leaves_things_behind": """
        import os
        import subprocess

        def _escape():
            try:
                subprocess.Popen(["sleep", SLEEP_MARK], start_new_session=True)
            except Exception:
                pass
            for folder in (".", "/tmp", "/dev/shm"):
                try:
                    open(os.path.join(folder, f"left-{MARKER_NAME}"), "w").write("x")
                except Exception:
                    pass

        def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
            _escape()
            return _honest(weight, num_replicas, num_groups, num_nodes, num_gpus)
        """,
}

CASES = [c for c in get_suite("smoke") if c.preset == "gpt-oss-120b"]


def _source(body: str, tmp_path: Path) -> str:
    constants = (f"ROOT = {str(ROOT)!r}\nDB = {str(tmp_path / 'h.db')!r}\nMARKER = {str(tmp_path / 'pwned')!r}\n"
                 f"MARKER_NAME = {MARK!r}\nSLEEP_MARK = {SLEEP_MARK!r}\n")
    return HONEST + "\n" + constants + textwrap.dedent(body)


def _processes_with(text: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and text.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                pids.append(int(entry))
        except OSError:
            pass
    return pids


def _files_named(name: str) -> list[Path]:
    return [p for p in Path("/tmp").rglob(f"*{name}*")]


def _contains(folder: Path, text: str) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


# root: workers drop to nobody; userns: an ordinary user's path (forced); nocaps: root with
# every capability dropped, as in a container (namespaces come from a user namespace).
NO_CAPS = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]


@pytest.fixture(scope="module", params=["root", pytest.param("userns", marks=pytest.mark.slow),
                                        pytest.param("nocaps", marks=pytest.mark.slow)])
def attacked(request, tmp_path_factory):
    """One `evaluate` of every hostile candidate and the baseline; returns (tmp, completed, per-case)."""
    if request.param in ("root", "nocaps") and os.geteuid() != 0:
        pytest.skip("this path needs root")
    if request.param == "nocaps" and not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is not installed")
    tmp = tmp_path_factory.mktemp(f"attack-{request.param}")
    folder = tmp / "candidates"
    folder.mkdir()
    for name, body in HOSTILE.items():
        (folder / f"{name}.py").write_text(_source(body, tmp))
    env = {**os.environ, "OPENAI_API_KEY": KEY, "EPLB_SANDBOX_USERNS": "1" if request.param == "userns" else "0"}
    completed = subprocess.run(
        (NO_CAPS if request.param == "nocaps" else [])
        + [sys.executable, "-m", "harness", "evaluate", str(folder), "--suite", "smoke", "--preset", "gpt-oss-120b",
           "--db", f"sqlite:///{tmp / 'h.db'}", "--out", str(tmp / "out"), "--quiet", "--repeats", "2",
           "--timeout", "60"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=900, start_new_session=True)
    per_case = pd.read_csv(tmp / "out" / "cases.csv") if (tmp / "out").exists() else None
    return tmp, completed, per_case


def _rows(per_case: pd.DataFrame, name: str) -> pd.DataFrame:
    return per_case[per_case["candidate"] == name].set_index("case_key").sort_index()


def _equal_to_honest(per_case: pd.DataFrame, name: str) -> None:
    mine, honest = _rows(per_case, name), _rows(per_case, "deepseek_baseline")
    assert mine["ok"].all(), mine["reason"].tolist()
    for column in ("gpu_balancedness", "oracle_gpu_balancedness", "node_balancedness"):
        assert mine[column].tolist() == honest[column].tolist(), column


def test_the_harness_survives_every_attack_and_reports_each_candidate(attacked):
    tmp, completed, per_case = attacked
    assert completed.returncode in (0, 1), completed.stderr[-2000:]
    assert "Traceback" not in completed.stderr
    assert per_case is not None and set(per_case["candidate"]) == set(HOSTILE) | {"deepseek_baseline"}
    assert (per_case.groupby("candidate").size() == len(CASES)).all()


@pytest.mark.parametrize("name", ["patches_scorer", "walks_frames", "regenerates_workload",
                                  "rewrites_returned_tensors", "attacks_the_store", "kills_the_harness",
                                  "leaves_things_behind"])
def test_a_cheat_scores_exactly_what_its_honest_fallback_scores(attacked, name):
    _, _, per_case = attacked
    _equal_to_honest(per_case, name)


def test_a_pickle_bomb_is_an_invalid_answer_and_never_runs_in_the_harness(attacked):
    tmp, _, per_case = attacked
    assert set(_rows(per_case, "returns_a_pickle_bomb")["failure_kind"]) == {"invalid"}
    assert not (tmp / "pwned").exists()


def test_the_store_keeps_every_result_and_no_forged_row(attacked):
    tmp, _, per_case = attacked
    con = sqlite3.connect(tmp / "h.db")
    stored = con.execute("select count(*) from evaluations").fetchone()[0]
    forged = con.execute("select count(*) from candidates where id = 'forged'").fetchone()[0]
    assert (stored, forged) == (len(per_case), 0)


def test_the_key_is_found_nowhere_and_written_nowhere(attacked):
    tmp, completed, per_case = attacked
    reasons = _rows(per_case, "steals_the_key")["reason"].tolist()
    assert all(r == "RuntimeError: found [] (at steals_the_key.py:" + r.split(":")[-1] for r in reasons), reasons
    assert _contains(tmp, KEY) == [] and KEY not in completed.stdout + completed.stderr


def test_memoised_timed_calls_are_timed_as_the_policy_costs_or_not_at_all(attacked):
    tmp, _, per_case = attacked
    con = sqlite3.connect(tmp / "h.db")
    rows = con.execute("select t.median_s, t.failure_kind, t.reason from timings t join candidates c "
                       "on c.id = t.candidate_id where c.name = 'memoises_timed_calls'").fetchall()
    assert len(rows) == len(CASES)
    for median_s, kind, reason in rows:
        # Distinct inputs defeat the content cache; an identity cache that hits answers with a
        # placement for other experts, and a timing of such answers does not count.
        assert (median_s is not None and median_s >= 0.25) or (kind == "invalid" and "does not count" in reason)
    assert not (_rows(per_case, "memoises_timed_calls")["runtime_ms"] < 250).any()


def test_no_process_or_file_outlives_its_task(attacked):
    assert _processes_with(SLEEP_MARK) == []
    assert _files_named(f"left-{MARK}") == []
    assert list(Path("/tmp").glob("eplb-sandbox-[0-9]*-*/task-*")) == []


def _parents() -> dict[int, int]:
    out = {}
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit():
                out[int(entry)] = int(Path(f"/proc/{entry}/status").read_text().split("PPid:")[1].split()[0])
        except (OSError, IndexError):
            pass
    return out


def _descendants(pid: int) -> set[int]:
    parents, found = _parents(), {pid}
    grew = True
    while grew:
        grew = False
        for child, parent in parents.items():
            if parent in found and child not in found:
                found.add(child)
                grew = True
    return found - {pid}


def test_killing_the_harness_ends_its_workers_and_the_next_start_removes_its_folder(tmp_path):
    spinner = tmp_path / "spins.py"
    spinner.write_text(_source("""
        import subprocess

        def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
            subprocess.Popen(["sleep", SLEEP_MARK], start_new_session=True)
            while True:
                pass
        """, tmp_path))
    harness = subprocess.Popen(
        [sys.executable, "-m", "harness", "evaluate", str(spinner), "--suite", "smoke", "--preset", "gpt-oss-120b",
         "--db", f"sqlite:///{tmp_path / 'h.db'}", "--out", str(tmp_path / "out"), "--quiet", "--timeout", "600"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not _processes_with(SLEEP_MARK) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _processes_with(SLEEP_MARK), "the spinning candidate never started"
        sandboxed = _descendants(harness.pid)  # the zygote, a keeper, the spinning worker, its sleep
        assert len(sandboxed) >= 4
        folders = list(Path("/tmp").glob(f"eplb-sandbox-{harness.pid}-*"))
        assert folders
    finally:
        harness.send_signal(signal.SIGKILL)
        harness.wait()
    deadline = time.monotonic() + 10
    while sandboxed & set(_parents()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sandboxed & set(_parents()) == set()
    assert set(map(str, folders)) <= set(sandbox.remove_stale_folders())


def test_a_limit_failure_is_not_reused_by_a_run_with_other_limits(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/h.db")
    cases = [Case("zipf", "mixtral-8x7b", 0, windows=2)]
    copy = from_source(baseline().source + "\n# a copy\n", name="copy")
    tight = RunConfig(limits=sandbox.Limits(timeout_s=0.001), quiet=True, time_runs=False)
    first = evaluate(store, [copy], cases, tight)
    assert store.evaluations_frame([copy.id])[["failure_kind", "run_id"]].values.tolist() == [["timeout", first.run_id]]
    # The same limits again: the failure holds for them and is reused.
    evaluate(store, [copy], cases, tight)
    assert store.evaluations_frame([copy.id])[["failure_kind", "run_id"]].values.tolist() == [["timeout", first.run_id]]
    # Other limits: evaluated again, and it passes.
    again = evaluate(store, [copy], cases, RunConfig(quiet=True, time_runs=False))
    assert (again.scored, again.reused) == (2, 0)
    assert store.evaluations_frame([copy.id])["failure_kind"].isna().all()


REGENERATOR = """
    import types
    import numpy as np

    def _module(name, source):
        module = types.ModuleType(name)
        _sys.modules[name] = module
        exec(source, module.__dict__)
        return module

    _sys.modules["evaluator"] = types.ModuleType("evaluator")
    _module("evaluator.deployment", DEPLOYMENT_SOURCE)
    _presets = _module("evaluator.presets", PRESETS_SOURCE)
    _module("evaluator.registry", REGISTRY_SOURCE)
    _sys.modules["evaluator.workloads"] = types.ModuleType("evaluator.workloads")
    _workloads = _module("evaluator.workloads.base", WORKLOADS_SOURCE.pop("base"))
    for _name, _family in WORKLOADS_SOURCE.items():
        _module("evaluator.workloads." + _name, _family)

    def _future(weight):
        for preset in _presets.PRESETS.values():
            if (preset.num_layers, preset.num_experts) == tuple(weight.shape):
                for family in _workloads.WORKLOADS:
                    for seed in range(5):
                        future = _next_in(_workloads.generate(family, preset, seed, 2), weight)
                        if future is not None:
                            return future
        return None

    def rebalance_experts(weight, *shape):
        return _balanced_for(_future(weight), weight, *shape)
"""


def test_a_copy_of_the_generator_regenerates_a_public_suite_but_not_its_private_twin(tmp_path):
    from evaluator.suites import private_cases
    from harness.leaderboard import case_results

    store = Store(f"sqlite:///{tmp_path}/h.db")
    public = [Case("zipf", "mixtral-8x7b", 0, windows=2), Case("hotspot", "mixtral-8x7b", 1, windows=2)]
    private = private_cases(public, store.suite_secret())
    assert store.suite_secret() == Store(f"sqlite:///{tmp_path}/h.db").suite_secret()
    assert {c.key for c in private}.isdisjoint(c.key for c in public)
    assert all(c.name.endswith(f"#private{p.seed}") for c, p in zip(private, public, strict=True))
    families = {p.stem: p.read_text() for p in sorted((ROOT / "evaluator" / "workloads").glob("*.py"))
                if p.stem != "__init__"}
    embedded = (f"DEPLOYMENT_SOURCE = {(ROOT / 'evaluator' / 'deployment.py').read_text()!r}\n"
                f"PRESETS_SOURCE = {(ROOT / 'evaluator' / 'presets.py').read_text()!r}\n"
                f"REGISTRY_SOURCE = {(ROOT / 'evaluator' / 'registry.py').read_text()!r}\n"
                f"WORKLOADS_SOURCE = {families!r}\n")
    cheat = from_source(_source(embedded + textwrap.dedent(REGENERATOR), tmp_path), name="regenerator")
    report = evaluate(store, [cheat], public + private, RunConfig(quiet=True, time_runs=False))
    per_case = case_results(store, [c.key for c in public + private], report.candidate_ids)
    gain = per_case.pivot_table(index="case", columns="candidate", values="gpu_balancedness")
    gain = gain["regenerator"] - gain["deepseek_baseline"]
    # Public seeds are in this repository: a program can carry the generator and balance for the next window.
    assert (gain[[c.name for c in public]] > 0.01).all()
    # Their private twin's seeds are only in the store: the same program gains nothing there.
    assert (gain[[c.name for c in private]] == 0).all()


PROBE = """
    import os

    def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
        tried = []
        for path in (os.path.join(ROOT, "evaluator", "suites.py"), DB):
            try:
                open(path).read(1)
                tried.append(f"read {path}")
            except OSError:
                pass
        for path in ("/var/tmp/eplb-probe-" + MARKER_NAME, os.path.join(ROOT, "probe-" + MARKER_NAME)):
            try:
                open(path, "w").write("x")
                tried.append(f"wrote {path}")
            except OSError:
                pass
        open("mine.txt", "w").write("x")  # its own folder is writable
        import socket
        try:
            socket.create_connection(("127.0.0.1", PORT_NUMBER), timeout=2).close()
            tried.append("connected to a server on 127.0.0.1")
        except OSError:
            pass
        try:
            if os.getppid():  # 0 in its own PID namespace: no parent to name
                os.kill(os.getppid(), 0)
                tried.append("signalled its parent")
        except OSError:
            pass
        raise RuntimeError(f"managed: {tried} in {os.getcwd()}")
"""


@pytest.mark.parametrize("namespaces", ["1", "0"])
def test_a_worker_cannot_read_write_signal_or_connect_outside_with_or_without_namespaces(tmp_path, monkeypatch,
                                                                                         namespaces):
    monkeypatch.setenv("EPLB_SANDBOX_NAMESPACES", namespaces)
    (tmp_path / "h.db").write_text("secret results")
    server = socket.create_server(("127.0.0.1", 0))  # a real server the worker must not reach
    with server, sandbox.Worker(sandbox.Limits(timeout_s=60)) as worker:
        assert ("pid namespace" in worker.layers) == (namespaces == "1")
        assert any(layer.startswith("landlock") for layer in worker.layers)
        worker.load("probe", _source(PROBE.replace("PORT_NUMBER", str(server.getsockname()[1])), tmp_path))
        with pytest.raises(sandbox.TaskFailure, match=r"managed: \[\] in ") as failure:
            worker.call(np.ones((2, 8), dtype=np.int64), (8, 1, 1, 2))
        folder = str(failure.value).rsplit(" in ", 1)[1].split()[0]
        assert folder == "/tmp" if namespaces == "1" else folder.startswith("/tmp/eplb-sandbox-")
    assert not Path(folder).exists() or namespaces == "1"
    assert not Path(f"/var/tmp/eplb-probe-{MARK}").exists() and not (ROOT / f"probe-{MARK}").exists()
