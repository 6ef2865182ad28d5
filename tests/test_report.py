"""The static report: built from a store with an evolve run, a replay and a tune study, opened in Chromium."""

import random
import re
import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest
import yaml

from evaluator.suites import get_suite
from harness.cli import main
from harness.labels import place_labels
from harness.leaderboard import case_results, leaderboard
from harness.plots import pareto_figure, plot_gap_heatmap, plot_pareto, progress_figure
from harness.store import Store

ROOT = Path(__file__).resolve().parent.parent
CANDIDATES = ROOT / "candidates"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A store filled the way a researcher fills it, and the report built from it."""
    tmp = tmp_path_factory.mktemp("report")
    db, storage = f"sqlite:///{tmp}/h.db", f"sqlite:///{tmp}/optuna.db"
    fast, rounds = str(CANDIDATES / "vectorized_greedy.py"), str(CANDIDATES / "rounds_swap.py")
    assert main(["evaluate", fast, rounds, "--sweep", "GROUP_LOCAL=0", "--suite", "smoke", "--repeats", "1", "--db", db,
                 "--quiet",
                 "--out", str(tmp / "eval")]) == 0
    config = {"name": "demo-run", "parents": [str(CANDIDATES / "deepseek_baseline.py"), fast], "suite": "smoke",
              "seed": 3, "islands": 1, "children_per_island": 2, "max_evaluations": 4,
              "features": {"gpu_balancedness": [0.74, 0.745, 0.75]},
              "operators": {"knobs": {"weight": 1, "scale": 0.5}, "diff_library": {
                  "weight": 1, "folder": str(ROOT / "diffs" / "seeds")}},
              "out": str(tmp / "evolve")}
    (tmp / "evolve.yaml").write_text(yaml.safe_dump(config))
    assert main(["evolve", "--config", str(tmp / "evolve.yaml"), "--db", db, "--quiet"]) == 0
    assert main(["replay", fast, rounds, "--trace", str(ROOT / "traces" / "real" / "harmoeny_qwen15moe_bookcorpus.npy"),
                 "--preset", "qwen1.5-moe-a2.7b", "--every", "2", "--db", db, "--quiet",
                 "--out", str(tmp / "replay")]) == 0
    assert main(["tune", rounds, "--trials", "2", "--preset", "gpt-oss-120b", "--seed", "1", "--storage", storage,
                 "--db", db, "--quiet", "--out", str(tmp / "tune"), "--export", str(tmp / "tuned.py")]) == 0
    assert main(["report", "--db", db, "--storage", storage, "--out", str(tmp / "site")]) == 0
    return {"dir": tmp / "site", "db": db}


def test_every_page_links_only_to_files_of_the_site(site):
    pages = list(site["dir"].rglob("*.html"))
    assert {p.parent.name for p in pages} >= {"site", "candidates", "evolve", "replays", "tune"}
    for page in pages:
        text = page.read_text()
        for link in re.findall(r'(?:href|src)="([^"]+)"', text):
            assert not re.match(r"[a-z]+://", link), f"{page.name} links out: {link}"
            target = link.split("#")[0]
            if target and not target.startswith("data:"):
                assert (page.parent / target).resolve().exists(), f"{page}: dead link {link}"


def test_a_missing_store_or_storage_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "site"
    assert main(["report", "--db", f"sqlite:///{tmp_path}/none.db", "--out", str(out)]) == 2
    assert main(["report", "--db", f"sqlite:///{tmp_path}/none.db", "--suite", "nope", "--out", str(out)]) == 2
    Store(f"sqlite:///{tmp_path}/h.db")
    assert main(["report", "--db", f"sqlite:///{tmp_path}/h.db", "--storage", f"sqlite:///{tmp_path}/no.db",
                 "--out", str(out)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)
    assert not out.exists()


def test_labels_never_overlap_each_other_or_a_point():
    rng = random.Random(0)
    points = [(rng.uniform(0, 600), rng.uniform(0, 400)) for _ in range(40)]
    sizes = [(rng.uniform(40, 140), 13.0) for _ in points]
    spots = place_labels(points, sizes, (0, 0, 600, 400))
    boxes = [(x, y, x + w, y + h) for s, (w, h) in zip(spots, sizes, strict=True) if s for x, y in [s]]
    assert 15 <= len(boxes) < 40  # crowded: some are left for hover
    for i, a in enumerate(boxes):
        assert 0 <= a[0] and a[2] <= 600 and 0 <= a[1] and a[3] <= 400
        for b in boxes[i + 1:]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])
        for px, py in points:
            assert not (a[0] < px + 4 and px - 4 < a[2] and a[1] < py + 4 and py - 4 < a[3])


def test_the_pngs_draw_thirty_candidates_without_a_layout_warning(tmp_path):
    rng = random.Random(1)
    names = ["deepseek_baseline"] + [f"rounds_swap~llm{i}" for i in range(30)]
    table = pd.DataFrame({"candidate": names, "runtime_ms": [rng.uniform(1, 500) for _ in names],
                          "gpu_balancedness": [rng.uniform(0.78, 0.85) for _ in names]})
    per_case = pd.DataFrame([{"candidate": n, "case": f"case{c}", "gap_to_bound": 0.9, "ok": True}
                             for n in names for c in range(27)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot_pareto(table, tmp_path / "pareto.png")
        plot_gap_heatmap(per_case, table, tmp_path / "heatmap.png")
    assert (tmp_path / "pareto.png").stat().st_size > 20_000


def crowded_table(n: int = 30) -> pd.DataFrame:
    rng = random.Random(2)
    names = ["deepseek_baseline", "vectorized_greedy"] + [f"rounds_swap~llm{i}" for i in range(n)]
    table = pd.DataFrame({"candidate": names, "runtime_ms": [rng.uniform(1, 500) for _ in names],
                          "gpu_balancedness": [rng.uniform(0.78, 0.85) for _ in names]})
    table.loc[1, ["runtime_ms", "gpu_balancedness"]] = table.loc[0, ["runtime_ms", "gpu_balancedness"]] * 1.001
    return table


def test_the_pareto_png_has_no_two_labels_overlapping_and_labels_the_baseline():
    import matplotlib.pyplot as plt

    fig = pareto_figure(crowded_table())
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    labels = [t for t in ax.texts if t.get_text() and t.get_transform() == ax.transData]
    boxes = [t.get_window_extent(renderer) for t in labels]
    plt.close(fig)
    assert "deepseek_baseline" in [t.get_text() for t in labels] and len(labels) >= 15
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b), "two labels overlap"


def test_the_progress_png_has_whole_generation_ticks():
    import matplotlib.pyplot as plt

    fig = progress_figure([{"generation": g, "island": 0, "best": 0.8 + g / 100, "median": 0.79} for g in (1, 2, 3)])
    fig.canvas.draw()
    ticks = fig.axes[0].get_xticks()
    plt.close(fig)
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks)


# -- in a browser -------------------------------------------------------------------------
def browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[dev]')")
    if not chromium or not driver_path:
        pytest.skip("headless Chromium needs Debian's chromium and chromium-driver (.ci/run installs them)")
    options = Options()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1400,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver_path), options=options)


def errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def names_in(driver) -> list[str]:
    rows = driver.find_elements("css selector", "section.board:not(.hidden) table.leaderboard tbody tr")
    return [r.find_elements("css selector", "td")[1].text for r in rows]


# Every Pareto label and point as the browser draws them, in the board on show: pairs that overlap.
_OVERLAPS = """
const svg = document.querySelector('section.board:not(.hidden) svg.chart');
const box = e => e.getBoundingClientRect();
const labels = [...svg.querySelectorAll('text.label')].map(box);
const points = [...svg.querySelectorAll('.point')].map(box);
const cross = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
const out = [];
labels.forEach((a, i) => {
  labels.forEach((b, j) => { if (i < j && cross(a, b)) out.push(['label', i, 'label', j]); });
  points.forEach((b, j) => { if (cross(a, b)) out.push(['label', i, 'point', j]); });
});
return [labels.length, out];
"""


def rendered_overlaps(driver) -> list:
    count, overlaps = driver.execute_script(_OVERLAPS)
    assert count >= 2
    return overlaps


def test_the_report_in_headless_chromium(site):
    from selenium.webdriver.support.ui import Select

    store = Store(site["db"])
    keys = [c.key for c in get_suite("smoke")]
    table = leaderboard(case_results(store, keys), case_keys=keys)
    complete = table[table["rank"].notna()]["candidate"].tolist()
    driver = browser()
    try:
        driver.get((site["dir"] / "index.html").as_uri())
        assert errors(driver) == []
        Select(driver.find_element("id", "f-suite")).select_by_visible_text("smoke")
        assert names_in(driver) == complete  # one row per complete candidate, in rank order
        assert rendered_overlaps(driver) == []
        def header(text: str):
            return driver.find_element("xpath", "//section[not(contains(@class,'hidden'))]//table[contains(@class,"
                                                f"'leaderboard')]//th[text()='{text}']")

        header("rank").click()  # ascending: the rank order
        assert names_in(driver) == complete
        header("rank").click()  # again: reversed
        assert names_in(driver) == complete[::-1]
        header("candidate").click()
        assert names_in(driver) == sorted(complete)
        header("runtime_ms").click()  # lower is better: fastest first, untimed ones last
        runtimes = table.set_index("candidate")["runtime_ms"]
        by_runtime = names_in(driver)
        timed = [runtimes[n] for n in by_runtime if pd.notna(runtimes[n])]
        assert sorted(by_runtime) == sorted(complete) and len(timed) >= 2 and timed == sorted(timed)
        assert all(pd.isna(runtimes[n]) for n in by_runtime[len(timed):])
        # The sweep's variants are the rows of origin "sweep"; the evolve run's children score on its private
        # twin of smoke, so which of them (if any) reach this board depends on the run.
        rows = driver.find_elements("css selector", "section.board:not(.hidden) table.leaderboard tbody tr")
        origins = [r.get_attribute("data-origin") for r in rows]
        assert origins.count("sweep") == 2 and origins.count("file") >= 3
        Select(driver.find_element("id", "f-origin")).select_by_visible_text("sweep")
        assert [o for r, o in zip(rows, origins, strict=True) if r.is_displayed()] == ["sweep", "sweep"]
        # A sweep variant's row links to its page, which shows its diff against its parent.
        driver.find_element("xpath", "//section[not(contains(@class,'hidden'))]//tr[@data-origin='sweep']//a").click()
        diff = driver.find_element("css selector", "pre.diff")
        assert diff.find_elements("css selector", "span.add") and diff.find_elements("css selector", "span.del")
        assert errors(driver) == []
        # The evolve run's page: the root of its lineage links to the best's page.
        events = store.evolution_events_frame("demo-run")
        archived = events[(events["status"] == "archived") & (events["generation"] == events["generation"].max())]
        best = store.get_candidate(archived.sort_values("fitness").iloc[-1]["candidate_id"]).name
        driver.get((site["dir"] / "evolve" / "demo-run.html").as_uri())
        assert errors(driver) == [] and driver.find_elements("css selector", "svg.chart polyline")
        driver.find_element("css selector", "ul.tree > li > a").click()
        assert errors(driver) == [] and driver.find_element("css selector", "h1").text == best
        for page in ("runs.html", *(f"{d}/{p.name}" for d in ("replays", "tune") for p in (site["dir"] / d).iterdir())):
            driver.get((site["dir"] / page).as_uri())
            assert errors(driver) == [], page
            assert driver.find_elements("css selector", "main table, main svg, main li a"), page
    finally:
        driver.quit()


def test_a_deployment_fitting_no_suite_is_one_line_and_writes_nothing(site, tmp_path, capsys):
    out = tmp_path / "site"
    assert main(["report", "--db", site["db"], "--deployment", "slots=4,gpus=2,nodes=1", "--out", str(out)]) == 2
    assert "fits no suite's cases" in capsys.readouterr().err and not out.exists()
    assert main(["report", "--db", site["db"], "--suite", "smoke", "--deployment", "slots=288,gpus=32,nodes=4",
                 "--out", str(out)]) == 0
    page = (out / "index.html").read_text()
    assert "has no evaluation on suite smoke on deployment slots=288,gpus=32,nodes=4" in page
