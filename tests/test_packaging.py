"""The wheel carries what the harness needs: installed elsewhere, it evaluates the built-ins from any directory."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_installed_wheel_evaluates_every_builtin_from_another_directory(tmp_path):
    # Built from a copy: setuptools builds in the source tree, and a build/ left there can carry
    # removed files into a later wheel.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "results", "build", "*.egg-info",
                                                                "__pycache__", ".pytest_cache", ".ruff_cache"))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
                    str(source)], check=True, capture_output=True, cwd=tmp_path)
    wheel = next(wheels.glob("eplb_harness-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # A user's install: the pinned CPU torch first (./run's rule), then the wheel and its dependencies.
    for spec in ("torch==2.13.0", str(wheel)):
        subprocess.run([str(python), "-m", "pip", "install", "-q", spec], check=True, capture_output=True,
                       timeout=1200)
    # The sandbox's workers run as nobody and may read only the interpreter's own folders.
    for folder in (tmp_path, *tmp_path.parents):
        if folder != Path("/"):
            folder.chmod(folder.stat().st_mode | 0o055)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def harness(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(python), "-m", "harness", *args], capture_output=True, text=True, cwd=elsewhere,
                              timeout=900)

    where = subprocess.run([str(python), "-c", "import harness, evaluator.shipped as s; print(harness.__file__); "
                            "print(s.shipped_root())"], capture_output=True, text=True, cwd=elsewhere, check=True)
    code_at, data_at = where.stdout.split()
    assert code_at.startswith(str(site)) and data_at == str(venv / "share" / "eplb-harness")

    # The LLM's prompt templates are package data: the operator builds from them.
    prompts = subprocess.run([str(python), "-c", "from harness.llm.prompts import Prompts; "
                              "print('contract' in Prompts.load().system)"], capture_output=True, text=True,
                             cwd=elsewhere)
    assert prompts.stdout.strip() == "True", prompts.stderr

    suites = harness("suites")
    assert suites.returncode == 0, suites.stderr
    assert "real: 6 cases" in suites.stdout  # the recorded traces travel too

    result = harness("evaluate", "--builtin", "--suite", "smoke", "--preset", "gpt-oss-120b", "--no-timing", "--quiet",
                     "--db", f"sqlite:///{tmp_path}/h.db", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    builtins = sorted(p.stem for p in (ROOT / "candidates").glob("*.py"))
    assert all(f"| {name}" in result.stdout for name in builtins), result.stdout
    assert "0 failed" in result.stdout
    # Shipped paths stand in for missing local ones: the repository's own README commands work here.
    by_path = harness("evaluate", "candidates/vectorized_greedy.py", "--suite", "smoke", "--preset", "gpt-oss-120b",
                      "--no-timing", "--quiet", "--db", f"sqlite:///{tmp_path}/h.db", "--out", str(tmp_path / "o2"))
    assert by_path.returncode == 0 and "| vectorized_greedy" in by_path.stdout, by_path.stderr
    assert not list(elsewhere.iterdir())  # nothing written where it was run
    # The report's script and style are package data: an installed harness writes a working site.
    report = harness("report", "--db", f"sqlite:///{tmp_path}/h.db", "--out", str(tmp_path / "site"))
    assert report.returncode == 0, report.stderr
    assert {p.name for p in (tmp_path / "site" / "assets").iterdir()} == {"report.css", "report.js"}


def test_no_candidate_and_no_builtin_is_a_usage_error(capsys):
    from harness.cli import main

    assert main(["evaluate", "--suite", "smoke"]) == 2
    assert "no candidate given" in capsys.readouterr().err
