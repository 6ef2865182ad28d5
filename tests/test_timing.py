"""Timing: warm-up, repeats and spread, and no page faults a serving process would not have."""

import subprocess
import sys
import textwrap

import pytest

from evaluator.timing import time_call

# Allocates 2.5 MiB, touches it and frees it, like a policy's scratch arrays.
_FAULTS_PER_CALL = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from evaluator.timing import time_call

    def churn():
        a, b, c = np.ones(1 << 17), np.ones(1 << 17), np.ones(1 << 16)
        return a.sum() + b.sum() + c.sum()

    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    if sys.argv[1] == "time_call":
        start = faults()
        time_call(churn, repeats=20, warmup=3)
        calls = 23
    else:  # the same calls in a plain loop
        for _ in range(3):
            churn()
        start = faults()
        for _ in range(20):
            churn()
        calls = 20
    print((faults() - start) / calls)
""")


def _faults_per_call(mode: str) -> float:
    result = subprocess.run([sys.executable, "-c", _FAULTS_PER_CALL, mode], capture_output=True, text=True,
                            check=True)
    return float(result.stdout)


def test_time_call_counts_repeats_after_warmup():
    calls = []
    stats = time_call(lambda: calls.append(1), repeats=7, warmup=2)
    assert len(calls) == 9 and stats.repeats == 7 and stats.warmup == 2
    assert 0 <= stats.min_s <= stats.median_s <= stats.max_s and stats.iqr_s >= 0
    with pytest.raises(ValueError, match="repeats"):
        time_call(lambda: None, repeats=0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc and ru_minflt")
def test_timed_calls_do_not_fault_in_again_the_memory_each_call_frees():
    # In a fresh process every call faults its 2.5 MiB in again (about 600 faults here).
    assert _faults_per_call("loop") > 300
    # time_call warms the allocator first, as a long-running serving process has it.
    assert _faults_per_call("time_call") < 30


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc")
def test_time_call_still_times_when_the_memory_limit_refuses_the_warm_up():
    # 4 MiB of headroom, as a worker might get with a small --memory-mb: too little for the 16 MiB block.
    code = textwrap.dedent("""
        import resource
        from evaluator.timing import time_call
        size = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (size + (4 << 20), size + (4 << 20)))
        print(time_call(lambda: None, repeats=3).repeats)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "3", result.stderr
