"""`pot view`: self-contained pages, rendered by a real headless Chromium (screenshot kept in
tests/artifacts/viewer.png)."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pot.bench import run_bench
from pot.bench.viewer import page_name, tree_page, write_run_pages
from pot.budget import Budget
from pot.cli import app
from pot.methods import method_config, solve
from tests.scripted import ScriptedPolicy
from tests.test_bench import GOOD, SPEC, bench_tasks, scripted
from tests.test_pot_evolution import BAD, HALF, TASK

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HOSTILE = "</script><script>document.title='owned'</script>"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("run")
    return out, run_bench(out, SPEC, bench_tasks(), scripted())


def chromium(tmp_path: Path, url: str, *extra: str) -> str:
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium'}", "--window-size=1200,900", *extra, url,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def test_index_links_a_page_for_every_result(run):
    out, records = run
    index = write_run_pages(out)
    links = re.findall(r"href='([^']+)'", index.read_text())
    assert sorted(links) == sorted(page_name(r) for r in records)
    assert all((index.parent / link).is_file() for link in links)
    assert len(set(links)) == len(records) == 12


def test_pages_load_nothing_from_outside(run):
    _, records = run
    page = tree_page(records[2])
    urls = set(re.findall(r"https?://[^\s\"'<>]+", page))
    assert urls == {"http://www.w3.org/2000/svg"}  # the SVG namespace name, never fetched
    assert not re.search(r"<(link|img|iframe)\b|\bsrc=", page)


def test_tree_renders_in_headless_chromium(run, tmp_path):
    assert CHROMIUM, "chromium is missing: make setup installs it (apt-get install chromium)"
    _, records = run
    pot = json.loads(json.dumps(records[2]))
    assert pot["method"] == "pot"
    nodes = pot["trace"]["nodes"]
    nodes[2]["program"] += f"\n# {HOSTILE}"  # must stay text
    page = tmp_path / "pot.html"
    page.write_text(tree_page(pot))

    dom = chromium(tmp_path, f"file://{page}#node=4", "--dump-dom")
    assert len(re.findall(r'<g class="node[ "]', dom)) == len(nodes) == 5
    assert len(re.findall(r'<circle class="point"', dom)) == len(nodes) - 1
    assert '<g class="node answer selected" data-id="4"' in dom  # the answer, chosen by #node=4
    program = re.search(r'<pre id="program">(.*?)</pre>', dom, re.S)[1]
    assert program.strip() == GOOD
    labels = re.findall(r"<text[^>]*>([SC] v\d+)</text>", dom)
    assert labels == ["S v0", "S v0", "S v0", "C v1"]  # the committed program: evolved policy
    assert "owned" not in re.search(r"<title>(.*?)</title>", dom)[1]

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "viewer.png"
    screenshot.unlink(missing_ok=True)
    chromium(tmp_path, f"file://{page}#node=2", f"--screenshot={screenshot}")
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    dom = chromium(tmp_path, f"file://{page}#node=2", "--dump-dom")
    shown = re.search(r'<pre id="program">(.*?)</pre>', dom, re.S)[1]
    assert "&lt;/script&gt;&lt;script&gt;document.title='owned'" in shown


def test_view_cli(run, tmp_path):
    out, records = run
    runner = CliRunner()
    result = runner.invoke(app, ["view", str(out)])
    assert result.exit_code == 0 and "view/index.html" in result.output
    single = tmp_path / "result.json"
    single.write_text(json.dumps(records[0]))
    result = runner.invoke(app, ["view", str(single), "--html", str(tmp_path / "one.html")])
    assert result.exit_code == 0 and (tmp_path / "one.html").read_text().startswith("<!DOCTYPE")
    for args, message in [
        ([str(tmp_path / "none")], "not found"),
        ([str(out), "--html", "x.html"], "--html is for one result JSON"),
        ([str(out / "run.json")], "is not a result with a trace"),
    ]:
        result = runner.invoke(app, ["view", *args])
        assert result.exit_code == 2 and message in result.output, result.output


def test_updates_and_hidden_verdicts_render_in_headless_chromium(sandbox, tmp_path):
    assert CHROMIUM, "chromium is missing: make setup installs it (apt-get install chromium)"
    config = method_config("pot", {"grpo.lr": 1e-2})
    policy = ScriptedPolicy([BAD, HALF, BAD])
    # 11 programs: two groups with their committed programs, then a group that spends the budget
    result = solve(TASK, policy, sandbox, "pot", config=config, budget=Budget(programs=11))
    record = result.to_dict()
    updates = record["trace"]["updates"]
    assert [u["applied"] for u in updates] == [True, True, False]
    page = tmp_path / "updates.html"
    page.write_text(tree_page(record))

    leaf = updates[2]["state"]  # the node the third (skipped) group was sampled from
    dom = chromium(tmp_path, f"file://{page}#node={leaf}", "--dump-dom")
    tags = re.findall(r'<g class="update (applied|skipped)" data-update="(\d+)"', dom)
    assert tags == [("applied", "1"), ("applied", "2"), ("skipped", "3")]
    labels = re.findall(r'<g class="update [a-z]+"[^>]*><path[^>]*></path><text[^>]*>([^<]+)<', dom)
    assert labels == ["v1", "v2", "×"]
    rows = re.findall(r'<tr class="(applied|skipped)" title="[^"]*">(.*?)</tr>', dom, re.S)
    assert [kind for kind, _ in rows] == ["applied", "applied", "skipped"]
    cells = [re.findall(r"<td>(.*?)</td>", row) for _, row in rows]
    assert cells[0][4] == "0.00 0.50 0.00" and cells[0][5] == "-0.71 1.41 -0.71"
    assert cells[0][7] == "v0 → v1" and cells[2][6] == "skipped: budget spent"
    assert len(re.findall(r'<line class="update-line"', dom)) == 2  # on the reward curve
    rings = re.findall(r'<circle class="hidden-ring hidden-(pass|fail)"', dom)
    assert len(rings) == result.costs.programs == 11 and set(rings) == {"fail"}
    stats = dict(re.findall(r"<tr><th>(.*?)</th><td>(.*?)</td></tr>", dom))
    assert stats["finish reason"] == "fence" and stats["tokens (generated / prompt)"].startswith(
        "10 / "
    )
    assert stats["hidden tests (post-hoc)"].startswith("wrong_answer")
    assert stats["trained on"] == "update 3 skipped"
    dom = chromium(tmp_path, f"file://{page}#node=0", "--dump-dom")
    stats = dict(re.findall(r"<tr><th>(.*?)</th><td>(.*?)</td></tr>", dom))
    assert stats["trained on"] == "update 1 (v1)"
