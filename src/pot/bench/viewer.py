"""`pot view`: self-contained HTML pages of search trees (inline CSS, JS and SVG; no network).

One page per result: the tree laid out in SVG (a node per program, coloured by public reward,
labelled with the policy version that wrote it and whether it was sampled or committed, with a
marker on each state a GRPO update trained on), the program, feedback and statistics of a node
on click (or preselected by `#node=ID` in the URL), the table of updates, and the best public
reward per program index with the updates on it. Hidden verdicts judged after the method
finished (post-hoc) are shown beside each node. An index page links every (task, method, seed).
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

from pot.bench.runner import RunFolder

Record = dict[str, Any]
VIEW_DIR = "view"


class ViewerError(ValueError):
    pass


def page_name(record: Record) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", record["task_id"])
    return f"{slug}.{record['method']}.s{record['seed']}.html"


def script_json(value: Any) -> str:
    """JSON safe to embed in a <script> element: no '<' can close it."""
    return json.dumps(value).replace("<", "\\u003c")


def tree_page(record: Record, index_link: str | None = None) -> str:
    title = f"{record['task_id']} · {record['method']} · seed {record['seed']}"
    back = f'<a href="{html.escape(index_link)}">all results</a> · ' if index_link else ""
    verdict = "PASS" if record["hidden_passed"] else html.escape(record["hidden_verdict"])
    costs = record["costs"]
    summary = (
        f"{back}hidden tests <b class='{'pass' if record['hidden_passed'] else 'fail'}'>"
        f"{verdict}</b> · public reward {record['public_reward']:.2f} · "
        f"{costs['programs']} programs · {costs['generated_tokens']} tokens · "
        f"{costs['gradient_steps']} gradient steps · {costs['wall_s']:.1f} s"
        + (" · <b>oracle feedback</b>" if record["oracle"] else "")
    )
    data = {
        "nodes": record["trace"]["nodes"],
        "updates": record["trace"].get("updates", []),
        "posthoc": record.get("posthoc", {}).get("programs", []),
    }
    return (
        PAGE.replace("__TITLE__", html.escape(title))
        .replace("__SUMMARY__", summary)
        .replace("__DATA__", script_json(data))
    )


def applied_updates(record: Record) -> int:
    return sum(u["applied"] for u in record["trace"].get("updates", []))


def index_page(run: dict[str, Any] | None, records: list[Record]) -> str:
    rows = []
    for r in sorted(records, key=lambda r: (r["task_id"], r["seed"], r["method"])):
        status = "pass" if r["hidden_passed"] else "fail"
        rows.append(
            f"<tr><td>{html.escape(r['task_id'])}</td><td>{html.escape(r['method'])}</td>"
            f"<td>{r['seed']}</td><td class='{status}'>{html.escape(r['hidden_verdict'])}</td>"
            f"<td>{r['public_reward']:.2f}</td><td>{r['costs']['programs']}</td>"
            f"<td>{applied_updates(r)}</td>"
            f"<td><a href='{html.escape(page_name(r))}'>tree</a></td></tr>"
        )
    tasks = html.escape(run["config"]["tasks"]) if run else ""
    return (
        INDEX.replace("__TITLE__", f"Search trees: {tasks}")
        .replace("__COUNT__", str(len(records)))
        .replace("__ROWS__", "\n".join(rows))
    )


def write_run_pages(folder: Path) -> Path:
    """Write folder/view/index.html and one page per result; return the index."""
    run_folder = RunFolder(folder)
    records = run_folder.result_records()
    if not records:
        raise ViewerError(f"{run_folder.results} has no results: run `pot bench` first")
    out = Path(folder) / VIEW_DIR
    out.mkdir(exist_ok=True)
    for record in records:
        (out / page_name(record)).write_text(tree_page(record, index_link="index.html"))
    index = out / "index.html"
    index.write_text(index_page(run_folder.read_run(), records))
    return index


def write_result_page(result_file: Path, html_file: Path) -> Path:
    """One page for one result JSON (as written by `pot solve`)."""
    try:
        record = json.loads(Path(result_file).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ViewerError(f"{result_file}: cannot read a result JSON ({e})") from None
    if not isinstance(record, dict) or "nodes" not in record.get("trace", {}):
        raise ViewerError(f"{result_file} is not a result with a trace: use one from `pot solve`")
    html_file.write_text(tree_page(record))
    return html_file


STYLE = """
body { font: 14px system-ui, sans-serif; margin: 16px; color: #222; }
h1 { font-size: 18px; margin: 0 0 6px; }
.pass { color: #1a7f37; } .fail { color: #b42318; }
#layout { display: flex; gap: 16px; align-items: flex-start; }
#left { flex: 3; min-width: 0; }
#treebox { overflow: auto; border: 1px solid #ddd; max-height: 520px; }
#details { flex: 2; min-width: 320px; }
pre { background: #f6f8fa; padding: 8px; overflow: auto; max-height: 240px; margin: 4px 0 10px;
      white-space: pre-wrap; }
.node { cursor: pointer; } .node text { font-size: 11px; pointer-events: none; }
.node.answer circle { stroke: #000; stroke-width: 2.5; stroke-dasharray: 3 2; }
.node.selected circle, .node.selected rect { stroke: #1f6feb; stroke-width: 4; }
.edge { stroke: #999; fill: none; }
.update { cursor: pointer; } .update text { font-size: 10px; font-weight: bold; }
.update.applied path { fill: #8250df; } .update.skipped path { fill: #bbb; }
.update-line { stroke: #8250df; stroke-dasharray: 4 3; }
.hidden-ring { fill: none; stroke-width: 3; }
#updates td { font-variant-numeric: tabular-nums; white-space: nowrap; }
table { border-collapse: collapse; } td, th { padding: 2px 8px; text-align: left; }
.legend span { display: inline-block; width: 12px; height: 12px; vertical-align: middle; }
"""

PAGE = (
    """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>"""
    + STYLE
    + """</style></head>
<body>
<h1>__TITLE__</h1>
<p>__SUMMARY__</p>
<p class="legend">public reward: <span style="background:hsl(0,70%,50%)"></span> 0
<span style="background:hsl(60,70%,50%)"></span> 0.5 <span style="background:hsl(120,70%,40%)">
</span> 1 · label: node id, <b>S</b>ampled or <b>C</b>ommitted, v = policy version that wrote
it · dashed ring: the answer · outer ring: hidden tests judged afterwards (green pass, red
fail) · purple tag <b>vN</b>: a GRPO update trained on this state and made policy vN (grey
&times;: the group was not trained on) · click a node</p>
<div id="layout">
  <div id="left">
    <div id="treebox"><svg id="tree" xmlns="http://www.w3.org/2000/svg"></svg></div>
    <h3>Best public reward per program</h3>
    <svg id="curve" xmlns="http://www.w3.org/2000/svg" width="640" height="200"></svg>
    <h3>GRPO updates</h3>
    <p id="no-updates">No update: this method does not train the policy.</p>
    <table id="updates"></table>
  </div>
  <div id="details"><p id="hint">Click a node to see its program and feedback.</p>
    <table id="stats"></table>
    <h3>program</h3><pre id="program"></pre>
    <h3>feedback</h3><pre id="feedback"></pre></div>
</div>
<script type="application/json" id="data">__DATA__</script>
<script>
"use strict";
const SVG = "http://www.w3.org/2000/svg";
const data = JSON.parse(document.getElementById("data").textContent);
const nodes = data.nodes, updates = data.updates;
const byId = new Map(nodes.map(n => [n.id, n]));
const hidden = new Map();  // node id -> its program's post-hoc hidden verdict
for (const p of data.posthoc) for (const id of p.nodes) hidden.set(id, p);
const colour = r => `hsl(${Math.round(120 * r)}, 70%, ${r >= 1 ? 40 : 50}%)`;

function el(name, attrs, parent) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

// Tidy-enough layout: leaves take consecutive columns in depth-first order, a parent sits
// centred over its children, each depth is a row.
let column = 0;
function place(n) {
  const kids = n.children.map(id => byId.get(id));
  kids.forEach(place);
  n.col = kids.length ? (kids[0].col + kids[kids.length - 1].col) / 2 : column++;
}
place(nodes[0]);
const DX = 64, DY = 84, PAD = 36;
const depth = Math.max(...nodes.map(n => n.depth));
const tree = document.getElementById("tree");
tree.setAttribute("width", PAD * 2 + DX * Math.max(column - 1, 1));
tree.setAttribute("height", PAD * 2 + DY * depth + 20);
const at = n => [PAD + DX * n.col, PAD + DY * n.depth];
for (const n of nodes.slice(1)) {
  const [x1, y1] = at(byId.get(n.parent)), [x2, y2] = at(n);
  el("path", {class: "edge", d: `M${x1},${y1} C${x1},${(y1 + y2) / 2} ${x2},${(y1 + y2) / 2}`
    + ` ${x2},${y2}`}, tree);
}
let answer = null;  // Tree.best: highest reward, ties to the newest program
for (const n of nodes.slice(1)) if (!answer || n.reward >= answer.reward) answer = n;
for (const n of nodes) {
  const [x, y] = at(n);
  const g = el("g", {class: "node", "data-id": n.id, transform: `translate(${x},${y})`}, tree);
  if (n.parent === null) {
    el("rect", {x: -16, y: -12, width: 32, height: 24, fill: "#ddd", stroke: "#666"}, g);
    el("text", {"text-anchor": "middle", dy: 4}, g).textContent = "root";
  } else {
    if (hidden.has(n.id)) {
      const ok = hidden.get(n.id).hidden_passed;
      el("circle", {class: `hidden-ring ${ok ? "hidden-pass" : "hidden-fail"}`, r: 20,
                    stroke: ok ? "#1a7f37" : "#b42318"}, g);
    }
    el("circle", {r: 16, fill: colour(n.reward), stroke: "#444"}, g);
    el("text", {"text-anchor": "middle", dy: 4}, g).textContent = n.id;
    const who = n.creator === "committed" ? "C" : "S";
    el("text", {"text-anchor": "middle", dy: 30}, g).textContent = `${who} v${n.policy_version}`;
    if (n === answer) g.classList.add("answer");
  }
  g.addEventListener("click", () => select(n.id));
}
// One tag per update, right of the state it trained on; a state trained on more than once
// (always the root with root widening) gets a row of tags.
const tagsAt = new Map();
for (const u of updates) {
  const [x, y] = at(byId.get(u.state)), slot = tagsAt.get(u.state) || 0;
  tagsAt.set(u.state, slot + 1);
  const g = el("g", {class: `update ${u.applied ? "applied" : "skipped"}`, "data-update": u.index,
                     transform: `translate(${x + 22 + 26 * slot},${y - 20})`}, tree);
  el("path", {d: "M0,0 h22 v14 h-22 z"}, g);
  el("text", {x: 11, y: 11, "text-anchor": "middle", fill: "#fff"}, g).textContent =
    u.applied ? `v${u.version}` : "\u00d7";
  el("title", {}, g).textContent = u.applied
    ? `update ${u.index}: policy v${u.version_before} -> v${u.version}`
    : `update ${u.index} skipped: ${u.reason}`;
  g.addEventListener("click", () => select(u.state));
}
tree.setAttribute("width", Math.max(Number(tree.getAttribute("width")),
  ...updates.map(u => at(byId.get(u.state))[0] + 30 + 26 * tagsAt.get(u.state))));

function hiddenText(p) {  // the verdict, and each test group's (MBPP+: base, plus)
  const groups = Object.entries(p.hidden_groups || {});
  return p.hidden_verdict + groups.map(([g, ok]) => ` · ${g} ${ok ? "pass" : "fail"}`).join("");
}

function select(id) {
  const n = byId.get(id);
  for (const g of tree.querySelectorAll(".node")) {
    g.classList.toggle("selected", Number(g.dataset.id) === id);
  }
  document.getElementById("hint").textContent = n.parent === null
    ? "The root: the problem, before any program." : `Node ${n.id}`;
  const rows = [["creator", n.creator], ["public reward", n.reward.toFixed(3)],
    ["verdict", n.verdict], ["policy version", n.policy_version], ["simulation", n.simulation],
    ["depth", n.depth], ["prior", n.prior.toFixed(3)], ["visits", n.visits],
    ["Q", n.visits ? (n.value_sum / n.visits).toFixed(3) : "-"],
    // exactly 0 only when no log-probs were computed (methods without priors skip them)
    ["mean log-prob", n.mean_logprob === 0 ? "not computed" : n.mean_logprob.toFixed(3)],
    ["finish reason", n.finish_reason || "-"],
    ["tokens (generated / prompt)", `${n.tokens ?? "-"} / ${n.prompt_tokens ?? "-"}`],
    ["hidden tests (post-hoc)", hidden.has(n.id) ? hiddenText(hidden.get(n.id)) : "-"],
    ["trained on", updates.filter(u => u.state === n.id)
      .map(u => u.applied ? `update ${u.index} (v${u.version})` : `update ${u.index} skipped`)
      .join(", ") || "-"],
    ["created at", `${n.created_s.toFixed(2)} s`]];
  const stats = document.getElementById("stats");
  stats.replaceChildren(...rows.map(([k, v]) => {
    const tr = document.createElement("tr");
    tr.append(Object.assign(document.createElement("th"), {textContent: k}),
              Object.assign(document.createElement("td"), {textContent: String(v)}));
    return tr;
  }));
  document.getElementById("program").textContent = n.program;
  document.getElementById("feedback").textContent = n.feedback;
}

function drawCurve() {
  const svg = document.getElementById("curve"), programs = nodes.slice(1);
  const W = 640, H = 200, L = 40, B = 30, T = 10, R = 10;
  const x = i => L + (programs.length > 1 ? i / (programs.length - 1) : 0.5) * (W - L - R);
  const y = r => T + (1 - r) * (H - T - B);
  el("line", {x1: L, y1: y(0), x2: W - R, y2: y(0), stroke: "#999"}, svg);
  el("line", {x1: L, y1: y(0), x2: L, y2: y(1), stroke: "#999"}, svg);
  for (const r of [0, 0.5, 1]) {
    el("text", {x: L - 6, y: y(r) + 4, "text-anchor": "end", "font-size": 11}, svg)
      .textContent = r;
  }
  el("text", {x: (L + W) / 2, y: H - 2, "text-anchor": "middle", "font-size": 11}, svg)
    .textContent = "program index (creation order)";
  const step = Math.ceil(programs.length / 20);
  programs.forEach((n, i) => {
    if (i % step === 0 || i === programs.length - 1) {
      el("text", {x: x(i), y: y(0) + 14, "text-anchor": "middle", "font-size": 10}, svg)
        .textContent = i + 1;
    }
  });
  let best = 0;
  const points = programs.flatMap((n, i) => {  // a step: the best so far holds until beaten
    const before = best;
    best = Math.max(best, n.reward);
    return i ? [[x(i), y(before)], [x(i), y(best)]] : [[x(i), y(best)]];
  });
  if (points.length) {
    el("polyline", {points: points.map(p => p.join(",")).join(" "), fill: "none",
                    stroke: "#1f6feb", "stroke-width": 2}, svg);
  }
  for (const u of updates.filter(u => u.applied)) {  // it acts from the next program on
    const i = Math.min(u.programs_before, programs.length - 1) - 0.5;
    el("line", {class: "update-line", x1: x(i), y1: y(0), x2: x(i), y2: y(1)}, svg);
    el("text", {x: x(i) + 2, y: T + 10, "font-size": 10, fill: "#8250df"}, svg)
      .textContent = `v${u.version}`;
  }
  programs.forEach((n, i) => {
    const dot = el("circle", {class: "point", cx: x(i), cy: y(n.reward), r: 4,
                              fill: colour(n.reward)}, svg);
    el("title", {}, dot).textContent = `program ${i + 1} (node ${n.id}): reward ${n.reward}`;
  });
}
function drawUpdates() {
  const table = document.getElementById("updates");
  document.getElementById("no-updates").hidden = updates.length > 0;
  if (!updates.length) return;
  const fix = (v, d = 3) => (typeof v === "number" ? v.toFixed(d) : "-");
  const head = ["#", "simulation", "state", "group", "rewards", "advantages", "outcome",
                "policy", "loss", "KL", "clip frac.", "grad norm", "seconds"];
  const rows = updates.map(u => [u.index, u.simulation, u.state, u.group.join(" "),
    u.rewards.map(r => r.toFixed(2)).join(" "),
    u.applied ? u.advantages.map(a => a.toFixed(2)).join(" ") : "-",
    u.applied ? "applied" : `skipped: ${u.reason.split(":")[0]}`,
    `v${u.version_before} \u2192 v${u.version}`,
    fix(u.loss, 4), fix(u.kl, 4), fix(u.clip_fraction), fix(u.grad_norm), fix(u.seconds, 2)]);
  table.replaceChildren(...[head, ...rows].map((cells, i) => {
    const tr = document.createElement("tr");
    if (i) {
      tr.className = updates[i - 1].applied ? "applied" : "skipped";
      tr.title = updates[i - 1].reason;
    }
    tr.append(...cells.map(c => Object.assign(document.createElement(i ? "td" : "th"),
                                              {textContent: String(c)})));
    return tr;
  }));
}

drawCurve();
drawUpdates();
const wanted = /node=(\\d+)/.exec(location.hash);
select(wanted && byId.has(Number(wanted[1])) ? Number(wanted[1]) : (answer || nodes[0]).id);
</script>
</body></html>
"""
)

INDEX = (
    """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>"""
    + STYLE
    + """</style></head>
<body><h1>__TITLE__</h1><p>__COUNT__ results</p>
<table><tr><th>task</th><th>method</th><th>seed</th><th>hidden</th><th>public reward</th>
<th>programs</th><th>updates</th><th></th></tr>
__ROWS__
</table></body></html>
"""
)
