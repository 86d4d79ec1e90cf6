"""Output of `mlplint probe`: the contract's text and JSON forms. Formats only; decides nothing."""

from __future__ import annotations

import json
import math
import os
from typing import Any, Optional, TextIO

import click

from mlplint.lint.finding import Finding, Severity
from mlplint.probe.comparison_report import answer, comparison_lines
from mlplint.probe.detectors import Judgement, fmt
from mlplint.probe.stats import Stats
from mlplint.probe.symptoms import SYMPTOMS

_COLORS = {Severity.ERROR: "red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


def symptom_rows(judgements: dict[str, Judgement]) -> list[dict[str, Any]]:
    """Every observed symptom as the contract's JSON object, by code then step."""
    rows = []
    for code, judgement in sorted(judgements.items()):
        for seen in judgement.observed:
            symptom = SYMPTOMS[code]
            rows.append({"code": code, "name": symptom.name, "severity": symptom.severity.value,
                         "message": seen.message, "layer": seen.layer, "step": seen.step})
    return rows


def error_text(stats: Stats) -> Optional[str]:
    """The one-line reason a run ended early, or why it had nothing to train."""
    data = stats.data
    error = data.get("error")
    if error:
        shown = error.get("file")
        if shown and data.get("script") and os.path.abspath(shown) == os.path.abspath(data["script"]):
            shown = data["script"]
        where = f" ({shown}, line {error['line']})" if shown else ""
        return f"{error['type']}: {error['message']}{where}"
    if data.get("status") == "no-training":
        seen = data.get("seen", {})
        calls = seen.get("forward", 0)
        models = "no model called" if not seen.get("models") else \
            f"{_count(seen['models'], 'model')} called {'once' if calls == 1 else f'{calls} times'}"
        return f"the script finished without an optimizer step; the probe saw {models} and {_count(seen.get('backward', 0), 'backward() call')}"
    return None


def _count(number: int, noun: str) -> str:
    return f"no {noun}" if number == 0 else f"{number} {noun}{'s' if number != 1 else ''}"


def _json_number(value: float) -> Optional[float]:
    return value if math.isfinite(value) else None


def json_document(stats: Stats, judgements: dict[str, Judgement], findings: list[Finding],
                  comparison: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """The contract's JSON object; `comparison`: the `baseline` / `trials` keys, when asked for."""
    data = stats.data
    return {
        "version": 1,
        "script": data.get("script"),
        "status": data.get("status"),
        "device": data.get("device"),
        "steps": stats.steps,
        "loss": [_json_number(v) for v in stats.primary_loss()],
        "symptoms": symptom_rows(judgements),
        "findings": [f.to_json() for f in findings],
        "error": error_text(stats),
        **distributed_fields(stats),
        **(comparison or {}),
    }


def distributed_fields(stats: Stats) -> dict[str, Any]:
    """`ranks` (a torchrun job: each rank's status, steps and error, and the rank that failed first)
    and `mapped` (what was changed to run the script here), each only when there is one."""
    data, fields = stats.data, {}
    if data.get("ranks"):
        fields["ranks"] = [{"rank": r["rank"], "status": r["status"], "steps": r["steps"],
                            "error": f"{r['error']['type']}: {r['error']['message']}" if r.get("error") else None}
                           for r in data["ranks"]]
        fields["failing_rank"] = data.get("failing_rank")
    if data.get("mapped"):
        fields["mapped"] = list(data["mapped"])
    return fields


def report_json(stats: Stats, judgements: dict[str, Judgement], findings: list[Finding], out: TextIO,
                comparison: Optional[dict[str, Any]] = None) -> None:
    out.write(json.dumps(json_document(stats, judgements, findings, comparison), indent=2) + "\n")


def report_text(stats: Stats, judgements: dict[str, Judgement], findings: list[Finding], out: TextIO,
                comparison: Optional[dict[str, Any]] = None) -> None:
    data = stats.data
    script = data.get("script")
    echo = lambda text="": click.echo(text, file=out)  # noqa: E731
    if comparison:
        echo(click.style(answer(comparison), bold=True))
        echo()
    echo(f"mlplint probe executed {script} (budget {data.get('budget')} optimizer steps, device {data.get('requested_device', 'auto')})")
    echo(f"status: {data.get('status')} after {stats.steps} optimizer steps on {data.get('device') or 'an unknown device'}")
    loss = stats.primary_loss()
    if loss:
        echo(f"loss: {fmt(loss[0])} at the first step, {fmt(loss[-1])} at the last ({len(loss)} recorded)")
    reason = error_text(stats)
    if reason:
        echo(f"{'note' if data.get('status') == 'no-training' else 'error'}: {reason}")
    distributed = distributed_fields(stats)
    if distributed.get("ranks"):
        echo("ranks: " + "; ".join(f"{r['rank']} {r['status']} after {r['steps']} steps" for r in distributed["ranks"]))
    if distributed.get("mapped"):
        echo(f"mapped to run here: {', '.join(distributed['mapped'])}")
    for line in comparison_lines(comparison or {}):
        echo(line)
    rows = symptom_rows(judgements)
    if rows:
        echo()
    for row in rows:
        code = click.style(row["code"], fg=_COLORS[Severity(row["severity"])], bold=True)
        layer = f" layer '{row['layer']}':" if row["layer"] else ""
        step = f" (from step {row['step']})" if row["step"] is not None else ""
        echo(f"{script}: {code} {row['name']} ({row['severity']}):{layer} {row['message']}{step}")
    if findings:
        echo()
        echo("Static findings, checked against the run:")
        for f in findings:
            code = click.style(f.code, fg=_COLORS[f.severity], bold=True)
            echo(f"{f.path}:{f.line}:{f.column}: {code} {f.message}")
            if f.runtime is not None:
                symptoms = f" ({', '.join(f.runtime.symptoms)})" if f.runtime.symptoms else ""
                echo(f"    probe: {f.runtime.status}{symptoms}: {f.runtime.evidence}")
    echo()
    if rows or findings:
        echo(f"Found {len(rows)} runtime symptom{'s' if len(rows) != 1 else ''} and {len(findings)} static finding{'s' if len(findings) != 1 else ''}.")
    else:
        echo("No runtime symptoms and no static findings.")
