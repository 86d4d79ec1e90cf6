"""`mlplint probe --html FILE`: one self-contained page (inline SVG, inline CSS, no script, nothing
fetched from the network) with the loss curves of the run, of each trial and of scikit-learn's fit,
the differences table, the trials and the findings. Formats the probe's JSON document only."""

from __future__ import annotations

import html
import math
from typing import Any, Optional, Sequence

from mlplint.probe.comparison_report import answer

WIDTH, HEIGHT = 720, 320
MARGIN = {"left": 64, "right": 16, "top": 16, "bottom": 40}
COLORS = ["#1f6fd1", "#d1495b", "#2a9d5c", "#e0a100", "#7b4bc4", "#00a0b0", "#c45b9f", "#6b6b6b"]
SKLEARN_COLOR = "#ef7d00"
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 980px; color: #1b1b1b; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
.answer { font-size: 17px; font-weight: 600; padding: 10px 14px; background: #f1f5fb; border-left: 4px solid #1f6fd1; }
table { border-collapse: collapse; width: 100%; table-layout: fixed; overflow-wrap: anywhere; } th, td { text-align: left; vertical-align: top; padding: 4px 8px; border-bottom: 1px solid #ddd; }
th { background: #f6f6f6; } .from { color: #666; font-size: 12px; } code { font-size: 13px; }
.legend span { display: inline-block; margin-right: 16px; } .swatch { display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: -1px; }
svg text { font: 11px system-ui, sans-serif; fill: #444; }
"""


def write_html(document: dict[str, Any], path: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(render(document))


def render(document: dict[str, Any]) -> str:
    e = html.escape
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>mlplint probe: {e(str(document.get('script')))}</title>",
             f"<style>{STYLE}</style></head><body>",
             f"<h1>mlplint probe: <code>{e(str(document.get('script')))}</code></h1>"]
    if "baseline" in document or "trials" in document:
        parts.append(f"<p class=\"answer\">{e(answer(document))}</p>")
    parts.append(f"<p>status <b>{e(str(document.get('status')))}</b> after {document.get('steps')} optimizer steps on "
                 f"{e(str(document.get('device')))}{' &mdash; ' + e(document['error']) if document.get('error') else ''}</p>")
    parts += _curves(document)
    baseline = document.get("baseline")
    if baseline is not None:
        parts += _baseline(baseline)
    if document.get("trials") is not None:
        parts += _trials(document["trials"], document.get("untried", []))
    parts += _findings(document)
    parts.append("</body></html>\n")
    return "".join(parts)


def _curves(document: dict[str, Any]) -> list[str]:
    series = [("as written", document.get("loss") or [], COLORS[0])]
    for index, trial in enumerate(document.get("trials") or []):
        if trial.get("loss"):
            series.append((f"trial: {'/'.join(trial['codes'])} {trial['change']}", trial["loss"], COLORS[(index + 1) % len(COLORS)]))
    parts = ["<h2>Training loss per optimizer step</h2>", chart(series, "optimizer step", "loss", "run-loss")]
    sklearn = (document.get("baseline") or {}).get("sklearn") or {}
    if sklearn.get("loss_curve"):
        parts += ["<h2>scikit-learn's default MLP: training loss per epoch (its loss_curve_)</h2>",
                  chart([(f"{sklearn.get('estimator')} defaults", sklearn["loss_curve"], SKLEARN_COLOR)], "epoch", "loss", "sklearn-loss")]
    return parts


def chart(series: Sequence[tuple[str, Sequence[Optional[float]], str]], x_label: str, y_label: str, name: str) -> str:
    """An SVG line chart, one polyline per run of finite values of each series; a log y axis when
    the positive values span more than two orders of magnitude."""
    values = [v for _, ys, _ in series for v in ys if v is not None and math.isfinite(v)]
    legend = "".join(f"<span><i class=\"swatch\" style=\"background:{color}\"></i>{html.escape(label)}</span>" for label, _, color in series)
    if not values:
        return f"<p class=\"legend\">{legend}</p><p>No finite loss was recorded.</p>"
    log = min(values) > 0 and max(values) / min(values) > 100
    transform = math.log10 if log else (lambda v: v)
    low, high = transform(min(values)), transform(max(values))
    if high - low < 1e-12:
        low, high = low - 0.5, high + 0.5
    steps = max(max(len(ys) for _, ys, _ in series) - 1, 1)
    inner_w = WIDTH - MARGIN["left"] - MARGIN["right"]
    inner_h = HEIGHT - MARGIN["top"] - MARGIN["bottom"]

    def x_of(i: int) -> float:
        return MARGIN["left"] + inner_w * i / steps

    def y_of(v: float) -> float:
        return MARGIN["top"] + inner_h * (1 - (transform(v) - low) / (high - low))

    body = [f"<line x1=\"{MARGIN['left']}\" y1=\"{MARGIN['top'] + inner_h}\" x2=\"{WIDTH - MARGIN['right']}\" y2=\"{MARGIN['top'] + inner_h}\" stroke=\"#888\"/>",
            f"<line x1=\"{MARGIN['left']}\" y1=\"{MARGIN['top']}\" x2=\"{MARGIN['left']}\" y2=\"{MARGIN['top'] + inner_h}\" stroke=\"#888\"/>"]
    for fraction in (0, 0.5, 1):
        level = low + (high - low) * fraction
        shown = 10 ** level if log else level
        y = MARGIN["top"] + inner_h * (1 - fraction)
        body.append(f"<text x=\"{MARGIN['left'] - 6}\" y=\"{y + 4:.1f}\" text-anchor=\"end\">{shown:.3g}</text>")
    for i in (0, steps // 2, steps):
        body.append(f"<text x=\"{x_of(i):.1f}\" y=\"{HEIGHT - MARGIN['bottom'] + 16}\" text-anchor=\"middle\">{i + (1 if x_label == 'epoch' else 0)}</text>")
    body.append(f"<text x=\"{MARGIN['left'] + inner_w / 2:.0f}\" y=\"{HEIGHT - 6}\" text-anchor=\"middle\">{html.escape(x_label)}</text>")
    body.append(f"<text x=\"14\" y=\"{MARGIN['top'] + inner_h / 2:.0f}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {MARGIN['top'] + inner_h / 2:.0f})\">"
                f"{html.escape(y_label)}{' (log scale)' if log else ''}</text>")
    for index, (label, ys, color) in enumerate(series):
        for run in _finite_runs(ys):
            points = " ".join(f"{x_of(i):.1f},{y_of(v):.1f}" for i, v in run)
            if len(run) == 1:
                i, v = run[0]
                body.append(f"<circle class=\"curve\" data-series=\"{index}\" cx=\"{x_of(i):.1f}\" cy=\"{y_of(v):.1f}\" r=\"2.5\" fill=\"{color}\"/>")
            else:
                body.append(f"<polyline class=\"curve\" data-series=\"{index}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" "
                            f"points=\"{points}\"><title>{html.escape(label)}</title></polyline>")
    return (f"<p class=\"legend\">{legend}</p><svg id=\"{name}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" "
            f"viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{html.escape(y_label)} per {html.escape(x_label)}\">{''.join(body)}</svg>")


def _finite_runs(values: Sequence[Optional[float]]) -> list[list[tuple[int, float]]]:
    runs: list[list[tuple[int, float]]] = [[]]
    for i, v in enumerate(values):
        if v is not None and math.isfinite(v):
            runs[-1].append((i, v))
        elif runs[-1]:
            runs.append([])
    return [run for run in runs if run]


def _number(value: Optional[float]) -> str:
    return "unknown" if value is None else f"{value:.3g}"


def _baseline(baseline: dict[str, Any]) -> list[str]:
    e = html.escape
    parts = ["<h2>Baseline</h2>"]
    if baseline.get("skipped"):
        parts.append(f"<p>Skipped: {e(baseline['skipped'])}</p>")
    else:
        sklearn = baseline.get("sklearn") or {}
        parts.append(f"<table><tr><th></th><th>{e(str(baseline.get('metric')))} on {baseline.get('held_back')} held-back rows</th>"
                     f"<th>training loss</th><th>length</th></tr>"
                     f"<tr><td>this script</td><td>{_number(baseline['script']['metric'])}</td><td>{_number(baseline['script']['loss'])}</td>"
                     f"<td>{baseline['script']['steps']} steps</td></tr>"
                     f"<tr><td>scikit-learn {e(str(sklearn.get('estimator')))} (defaults)</td><td>{_number(sklearn.get('metric'))}</td>"
                     f"<td>{_number(sklearn.get('loss'))}</td><td>{sklearn.get('iterations')} epochs</td></tr></table>")
    rows = baseline.get("differences") or []
    if rows:
        parts.append("<h2>Differences</h2><table><tr><th>setting</th><th>this script</th><th>scikit-learn default</th>"
                     "<th>Keras default</th><th>where the defaults are set</th></tr>")
        for row in rows:
            parts.append(f"<tr><td>{e(row['setting'])}</td><td>{e(row['script'])}<div class=\"from\">from: {e(row['script_from'])}</div></td>"
                         f"<td>{e(row['sklearn'])}</td><td>{e(row['keras'])}</td><td class=\"from\">{e(row['defaults_from'])}</td></tr>")
        parts.append("</table>")
    return parts


def _trials(trials: list[dict[str, Any]], untried: list[dict[str, Any]]) -> list[str]:
    e = html.escape
    parts = ["<h2>Trials</h2>"]
    if not trials:
        parts.append("<p>No trial: no finding has an autofix or a runtime intervention.</p>")
    else:
        parts.append("<table><tr><th>codes</th><th>change</th><th>verdict</th><th>effect</th></tr>")
        for trial in trials:
            parts.append(f"<tr><td>{e(', '.join(trial['codes']))}</td><td>{e(trial['change'])} ({e(trial['fix'])})</td>"
                         f"<td>{e(trial['verdict'])}</td><td>{e(trial['effect'])}</td></tr>")
        parts.append("</table>")
    if untried:
        parts.append("<p>Not tried: " + "; ".join(e(f"{u['code']} (line {u['line']}): {u['reason']}") for u in untried) + "</p>")
    return parts


def _findings(document: dict[str, Any]) -> list[str]:
    e = html.escape
    parts = ["<h2>Findings</h2>"]
    rows = [(s["code"], s["severity"], s["message"], "runtime symptom") for s in document.get("symptoms", [])]
    for f in document.get("findings", []):
        runtime = f.get("runtime") or {}
        rows.append((f["code"], f["severity"], f"line {f['line']}: {f['message']}",
                     f"{runtime.get('status', '')}: {runtime.get('evidence', '')}" if runtime else ""))
    if not rows:
        return parts + ["<p>No runtime symptoms and no static findings.</p>"]
    parts.append("<table><tr><th>code</th><th>severity</th><th>message</th><th>probe</th></tr>")
    parts += [f"<tr><td>{e(c)}</td><td>{e(s)}</td><td>{e(m)}</td><td class=\"from\">{e(r)}</td></tr>" for c, s, m, r in rows]
    parts.append("</table>")
    return parts
