"""The run report: one static HTML file that says why a run shipped or did not.

Sections, in the order a reader asks the questions: the outcome and each component's state;
the data (TFDV statistics); validation (anomalies, text checks, the gate's decision); training
curves; evaluation for every slice with the confusion matrix; the blessing and the thresholds
that decided it; the TFLite variants, shipped or refused and why; where the pushed model and
every artifact are. Charts are inline SVG and the
page loads nothing else, so it opens from disk anywhere.
"""

from __future__ import annotations

import html
import math
import pathlib
import re
from typing import Any, Iterable, Optional, Sequence

from lite.layout import NO_EXPORT
from pipeline.config import PipelineConfig
from pipeline.evaluation import ACCURACY_METRIC, OVERALL_SLICE
from pipeline.metadata import find_run, metadata_store_of
from reporting import charts
from reporting.facts import RunFacts, facts_from_json, facts_to_json

SECTIONS = (("summary", "Outcome"), ("data", "Data"), ("validation", "Validation"),
            ("training", "Training"), ("evaluation", "Evaluation"), ("blessing", "Blessing"),
            ("tflite", "TFLite"), ("artifacts", "Artifacts"))
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 0 16px;
       color: #222; }
nav a { margin-right: 12px; }
section { border-top: 1px solid #ddd; margin-top: 24px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #11762c; font-weight: bold; }
.bad { color: #b00020; font-weight: bold; }
.outcome { font-size: 20px; padding: 8px 12px; border-radius: 4px; display: inline-block; }
.outcome.ok { background: #e6f4ea; } .outcome.bad { background: #fdecea; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
.empty { color: #777; font-style: italic; }
code { font-size: 12px; }
pre { white-space: pre-wrap; }
"""


def render(facts: RunFacts) -> str:
    """The whole report as one HTML document."""
    body = [_summary(facts), _data(facts), _validation(facts), _training(facts),
            _evaluation(facts), _blessing(facts), _tflite(facts), _artifacts(facts)]
    navigation = " ".join(f'<a href="#{anchor}">{title}</a>' for anchor, title in SECTIONS)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{_e(facts.pipeline_name)} run {_e(facts.run_id)}</title>'
            f'<style>{_STYLE}</style></head><body>'
            f'<h1>{_e(facts.pipeline_name)}: run {_e(facts.run_id)}</h1><nav>{navigation}</nav>'
            + "".join(body) + "</body></html>")


def write_run_report(config: PipelineConfig, run_id: Optional[str] = None, error: str = "",
                     path: Optional[str] = None, fresh: bool = False
                     ) -> tuple[RunFacts, pathlib.Path]:
    """Renders run `run_id` (default: the newest) of the local ML Metadata store to `path`
    (default: `<output_dir>/reports/run-<run id>.html`).

    The facts are read from ML Metadata and the artifacts when the run's report is first
    written (`fresh`: always) and kept beside it as `run-<run id>.json`; a later report of the
    run renders from those without importing TensorFlow.

    Raises:
      LookupError: no such run.
    """
    store = metadata_store_of(config)
    run_name = find_run(store, run_id).name
    stem = pathlib.Path(config.report_dir, "run-" + re.sub(r"[^0-9A-Za-z]+", "", run_name))
    facts_path = stem.with_suffix(".json")
    facts = None
    if not fresh and facts_path.is_file():
        try:
            facts = facts_from_json(facts_path.read_text(encoding="utf-8"))
        except ValueError:  # another version's facts: read them again below
            facts = None
    if facts is None:
        from reporting.run_facts import read_run_facts  # pylint: disable=import-outside-toplevel

        facts = read_run_facts(store, config.pipeline_name, run_name, error)
        facts_path.parent.mkdir(parents=True, exist_ok=True)
        facts_path.write_text(facts_to_json(facts), encoding="utf-8")
    target = pathlib.Path(path) if path else stem.with_suffix(".html")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(facts), encoding="utf-8")
    return facts, target


def _summary(facts: RunFacts) -> str:
    shipped = facts.pushed is not None
    parts = [f'<p class="outcome {"ok" if shipped else "bad"}">{_e(facts.outcome)}</p>']
    if facts.error:
        parts.append(f"<p>The run ended with this error:</p><pre>{_e(facts.error)}</pre>")
    accuracy = facts.slices.get(OVERALL_SLICE, {}).get("candidate", {}).get(ACCURACY_METRIC)
    parts.append(_table(None, [
        ["data span", "n/a" if facts.span is None else facts.span],
        ["data gate", facts.gate_state],
        ["eval accuracy (overall)", "n/a" if accuracy is None else f"{accuracy:.4f}"],
        ["blessed", {None: "not evaluated", True: "yes", False: "no"}[facts.blessed]],
        ["pushed", facts.pushed["destination"] if facts.pushed else "no"]]))
    parts.append(_table(["component", "state", "seconds"], [
        [row.component, _state(row.state), _number(row.seconds, "{:.1f}")]
        for row in facts.components], raw_columns={1}))
    return _section("summary", "".join(parts))


def _data(facts: RunFacts) -> str:
    if not facts.statistics:
        return _section("data", _empty("No statistics: the run stopped before StatisticsGen."))
    parts = [f"<p>TFDV statistics of span {facts.span}, per split.</p>"]
    for split, rows in facts.statistics.items():
        parts.append(f"<h3>{_e(split)}: {rows[0]['examples'] if rows else 0} examples</h3>")
        parts.append(_table(
            ["feature", "type", "missing", "unique", "avg length / mean", "top values"],
            [[row["feature"], row["type"], f"{row['missing']} ({row['missing_share']:.1%})",
              row.get("unique", ""),
              _number(row.get("avg_length", row.get("mean")), "{:.2f}"),
              ", ".join(f"{_shorten(value, 60)} ({count})"
                        for value, count in row.get("top_values", []))]
             for row in rows]))
    return _section("data", "".join(parts))


def _validation(facts: RunFacts) -> str:
    parts = [f"<p>Data gate: <span class=\"{'ok' if facts.gate_state == 'passed' else 'bad'}\">"
             f"{_e(facts.gate_state)}</span></p>"]
    if facts.gate_problems:
        parts.append("<p>What stopped it:</p><ul>" + "".join(
            f"<li>{_e(problem)}</li>" for problem in facts.gate_problems) + "</ul>")
    parts.append("<h3>ExampleValidator anomalies (against the schema)</h3>")
    parts.append("<ul>" + "".join(f"<li>{_e(item)}</li>" for item in facts.anomalies) + "</ul>"
                 if facts.anomalies else _empty("None."))
    report = facts.text_checks
    parts.append("<h3>Text checks</h3>")
    if report is None:
        parts.append(_empty("Not measured: the run stopped before TextChecks."))
        return _section("validation", "".join(parts))
    baseline = report.get("baseline")
    parts.append(f"<p>Tokenizer: {_e(report['tokenizer'])}; max_seq_length "
                 f"{report['max_seq_length']}; drift measured against "
                 f"{'the data accepted in span ' + str(baseline['span']) if baseline else 'nothing (no accepted data yet)'}.</p>")
    parts.append(_table(["check", "scope", "value", "threshold", "option", "result", "detail"], [
        [check["name"].replace("_", " "), check["scope"], _number(check["value"], "{:.4g}"),
         _number(check["threshold"], "{:g}"), f"<code>{_e(check['option'])}</code>",
         _verdict(check["passed"]), check["detail"]] for check in report["checks"]],
        raw_columns={4, 5}))
    figures = []
    for split, values in report["splits"].items():
        figures.append(charts.histogram(
            f"Token length, {split} split", values["token_length"]["histogram"],
            marker=(report["max_seq_length"], f"max_seq_length {report['max_seq_length']}"),
            x_label="tokens per example ([CLS]/[SEP] included)"))
        figures.append(charts.bar_chart(
            f"Labels, {split} split", sorted(values["label_counts"].items()), "{:.0f}"))
    parts.append(f'<div class="charts">{"".join(figures)}</div>')
    return _section("validation", "".join(parts))


def _training(facts: RunFacts) -> str:
    if not facts.training_curves and not facts.training_stats:
        return _section("training", _empty("No training: the run stopped before the Trainer."))
    parts = []
    if facts.training_stats:
        stats = facts.training_stats
        plan = stats.get("plan") or {}
        parts.append(_table(None, [
            ["steps", stats.get("train_steps")],
            *([["planned steps", f"{plan['train_steps']}: {plan['train_steps_rule']}"],
               ["learning rate", f"{plan['learning_rate']:g}: {plan['learning_rate_rule']}"]]
              if plan else []),
            ["fit seconds", stats.get("fit_seconds")],
            ["examples/s", stats.get("examples_per_second")],
            ["last epoch", ", ".join(f"{name} {value:.4f}"
                                     for name, value in (stats.get("last_epoch") or {}).items())]]))
    parts.append('<div class="charts">' + "".join(
        charts.line_chart(title, series, "epoch" if "epoch" in title else "step")
        for title, series in sorted(facts.training_curves.items())) + "</div>")
    return _section("training", "".join(parts))


def _evaluation(facts: RunFacts) -> str:
    if not facts.slices:
        return _section("evaluation", _empty("No evaluation: the run stopped before the Evaluator."))
    names = facts.label_names
    metric_columns = [ACCURACY_METRIC, "example_count"] + [
        f"{metric}/class_{index}" for metric in ("precision", "recall", "auc")
        for index in range(len(names))]
    present = [column for column in metric_columns
               if any(column in models["candidate"] for models in facts.slices.values())]
    has_baseline = any(models["baseline"] for models in facts.slices.values())
    ordered = sorted(facts.slices.items(), key=lambda item: (item[0] != OVERALL_SLICE,
                                                             item[0].count(","), item[0]))
    header = ["slice"] + [_metric_title(column, names) for column in present]
    if has_baseline:
        header += ["baseline accuracy", "change"]
    rows = []
    for name, models in ordered:
        row = [name] + [_number(models["candidate"].get(column),
                                "{:.0f}" if column == "example_count" else "{:.4f}")
                        for column in present]
        if has_baseline:
            candidate = models["candidate"].get(ACCURACY_METRIC)
            baseline = models["baseline"].get(ACCURACY_METRIC)
            row += [_number(baseline, "{:.4f}"),
                    _number(None if candidate is None or baseline is None
                            else candidate - baseline, "{:+.4f}")]
        rows.append(row)
    minimum = next((row["value"] for row in facts.thresholds
                    if row["metric"] == ACCURACY_METRIC and row["kind"] == "lower bound"), None)
    single_slices = [(name, models["candidate"].get(ACCURACY_METRIC, 0.0))
                     for name, models in ordered if "," not in name]
    figures = [charts.bar_chart(
        "Accuracy by slice", single_slices, "{:.3f}", maximum=1.0,
        marker=(minimum, f"min_accuracy {minimum:g}") if minimum is not None else None)]
    if facts.confusion is not None:
        figures.append(charts.confusion_matrix("Confusion matrix (overall)", names,
                                               facts.confusion))
    return _section("evaluation",
                    f"<p>TFMA metrics of the candidate for every slice"
                    f"{' beside the last blessed model (baseline)' if has_baseline else ''}; "
                    f"classes: {', '.join(f'{index} = {_e(name)}' for index, name in enumerate(names))}.</p>"
                    + _table(header, rows) + f'<div class="charts">{"".join(figures)}</div>')


def _blessing(facts: RunFacts) -> str:
    if facts.blessed is None:
        return _section("blessing", _empty("Not evaluated: no blessing decision."))
    parts = [f"<p>Decision: {_verdict(facts.blessed, 'blessed', 'not blessed')}"
             f" (baseline: {_e(facts.baseline_model) if facts.baseline_model else 'none, first blessed model'})</p>",
             "<p>Thresholds the Evaluator applied:</p>",
             _table(["metric", "slices", "rule"],
                    [[row["metric"], row["slices"], row["rule"]] for row in facts.thresholds])]
    if facts.validation_failures:
        parts.append("<p>What failed:</p><ul>" + "".join(
            f"<li>{_e(failure)}</li>" for failure in facts.validation_failures) + "</ul>")
    return _section("blessing", "".join(parts))


def _tflite(facts: RunFacts) -> str:
    report = facts.tflite
    if report is None:
        return _section("tflite", _empty("No TFLite export: the run stopped before it."))
    if not report["exported"]:
        return _section("tflite", f"<p>{_e(NO_EXPORT)}: {_e(report['reason'])}</p>")
    saved = report["saved_model"]
    rows = [["SavedModel", "reference", _number(saved["size_bytes"] / 2**20, "{:.1f}"), "1.00",
             _number(saved["accuracy"], "{:.4f}"), "", "", "",
             _number(saved["latency_p50_ms"], "{:.1f}"), "1.00", ""]]
    for variant, figures in report["variants"].items():
        if "size_bytes" not in figures:  # did not convert
            rows.append([variant, _verdict(False, no="refused"), *[""] * 8, figures["reason"]])
            continue
        rows.append([variant, _verdict(figures["shipped"], "shipped", "refused"),
                     _number(figures["size_bytes"] / 2**20, "{:.1f}"),
                     _number(figures["size_ratio"], "{:.2f}"),
                     _number(figures["accuracy"], "{:.4f}"),
                     _number(figures["accuracy_delta"], "{:+.4f}"),
                     _number(figures["changed_labels"], "{:.2%}"),
                     _number(figures["max_probability_difference"], "{:.4f}"),
                     _number(figures["latency_p50_ms"], "{:.1f}"),
                     _number(figures["latency_ratio"], "{:.2f}"), figures["reason"]])
    thresholds = report["thresholds"]
    return _section("tflite", (
        f"<p>Raw-text TFLite variants against the SavedModel on {report['eval_examples']} eval "
        f"examples; one ships when its accuracy drops by at most "
        f"{thresholds['max_accuracy_drop']:g} (and by at most "
        f"{thresholds['max_slice_accuracy_drop']:g} on any slice of "
        f"{thresholds['min_slice_examples']} examples or more) and at most "
        f"{thresholds['max_changed_labels']:.0%} of its labels differ. Latency: one text, "
        f"median.</p>")
        + _table(["model", "verdict", "MiB", "size ratio", "accuracy", "change",
                  "labels changed", "max probability difference", "p50 ms", "latency ratio",
                  "why not shipped"], rows, raw_columns={1}))


def _artifacts(facts: RunFacts) -> str:
    parts = []
    if facts.pushed:
        pushed = facts.pushed
        parts.append(_table(["pushed model", ""], [
            ["folder", f"<code>{_e(pushed['destination'])}</code>"],
            ["version", _e(pushed["version"])], ["published", _e(pushed["published_at"])],
            ["code version", _e(pushed["code_version"])],
            ["files in the manifest", pushed["files"]],
            ["signed", "yes" if pushed["signed"] else "no"]], raw_columns={1}))
    else:
        parts.append(_empty("Nothing pushed by this run."))
    parts.append(_table(["component", "output", "location"],
                        [[component, key, f"<code>{_e(uri)}</code>"]
                         for component, key, uri in facts.artifacts], raw_columns={2}))
    return _section("artifacts", "".join(parts))


def _section(anchor: str, content: str) -> str:
    title = dict(SECTIONS)[anchor]
    return f'<section id="{anchor}"><h2>{title}</h2>{content}</section>'


def _table(header: Optional[Sequence[str]], rows: Iterable[Sequence[Any]],
           raw_columns: Optional[set[int]] = None) -> str:
    """Cells are escaped unless their column is in `raw_columns` (already HTML); no `header`
    makes a key/value table."""
    raw_columns = raw_columns or set()
    head = "".join(f"<th>{_e(title)}</th>" for title in header) if header else ""
    body = "".join(
        "<tr>" + "".join(
            f'<td{" class=number" if isinstance(cell, (int, float)) else ""}>'
            f'{cell if index in raw_columns else _e(cell)}</td>'
            for index, cell in enumerate(row)) + "</tr>"
        for row in rows)
    thead = f"<thead><tr>{head}</tr></thead>" if head else ""
    return f"<table>{thead}<tbody>{body}</tbody></table>"


def _metric_title(column: str, names: Sequence[str]) -> str:
    metric, _, class_part = column.partition("/class_")
    return f"{metric} ({names[int(class_part)]})" if class_part else metric


def _verdict(passed: bool, yes: str = "passed", no: str = "crossed") -> str:
    return f'<span class="{"ok" if passed else "bad"}">{yes if passed else no}</span>'


def _state(state: str) -> str:
    return f'<span class="{"bad" if state == "FAILED" else "ok"}">{state}</span>' \
        if state in ("FAILED", "COMPLETE", "CACHED") else _e(state)


def _number(value: Optional[float], pattern: str) -> str:
    if value is None:
        return ""
    # TFMA reports an undefined metric (precision with no positive prediction) as NaN.
    return "n/a" if math.isnan(value) else pattern.format(value)


def _shorten(text: str, length: int) -> str:
    return text if len(text) <= length else text[:length - 1] + "…"


def _empty(text: str) -> str:
    return f'<p class="empty">{_e(text)}</p>'


def _e(value: Any) -> str:
    return html.escape(str(value))
