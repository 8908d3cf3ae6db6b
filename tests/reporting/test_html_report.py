"""The run report of real runs (the `gate_workspace` fixture's pipeline): its sections, charts and
facts, how headless Chromium renders it, and the report of a run the data gate stopped."""

import html.parser
import pathlib
import re
import subprocess
import sys

import pytest

from pipeline import cli
from pipeline.config import PipelineConfig
from reporting.browser import open_page
from reporting.html_report import SECTIONS, write_run_report
from tests.bad_inputs import CASES, default_rows
from tests.cli_process import run_cli
from tests.conftest import REPO_ROOT

# Per split a token-length histogram and a label chart; loss, accuracy and learning rate per
# epoch and per step; accuracy by slice; the confusion matrix.
EXPECTED_CHARTS = {"Token length, train split", "Token length, eval split", "Labels, train split",
                   "Labels, eval split", "loss per epoch", "accuracy per epoch",
                   "learning rate per epoch", "loss per step", "accuracy per step",
                   "learning rate per step", "Accuracy by slice", "Confusion matrix (overall)"}
# What the page shows once rendered: section ids, and the size each chart was drawn at.
RENDERED = """({
  sections: [...document.querySelectorAll('section')].map(section => section.id),
  charts: [...document.querySelectorAll('svg.chart')].map(chart => {
    const box = chart.getBoundingClientRect();
    return {title: chart.getAttribute('aria-label'), width: box.width, height: box.height,
            marks: chart.querySelectorAll('rect, polyline, circle').length};
  }),
})"""


class _Outline(html.parser.HTMLParser):
    """Section ids, chart titles and the text of the page."""

    def __init__(self):
        super().__init__()
        self.sections, self.charts, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "section":
            self.sections.append(attributes["id"])
        if tag == "svg":
            self.charts.append(attributes["aria-label"])

    def handle_data(self, data):
        self.text.append(data)


def _outline(path):
    outline = _Outline()
    outline.feed(path.read_text(encoding="utf-8"))
    return outline, " ".join(outline.text)


@pytest.fixture(scope="module")
def shipped_report(gate_workspace, tmp_path_factory):
    config = PipelineConfig.load(None, gate_workspace.overrides())
    return write_run_report(config, gate_workspace.good_run_id,
                            path=str(tmp_path_factory.mktemp("report") / "shipped.html"))


def test_a_shipped_runs_report_has_every_section_and_chart(shipped_report, gate_workspace):
    facts, path = shipped_report
    outline, text = _outline(path)

    assert outline.sections == [anchor for anchor, _ in SECTIONS]
    assert set(outline.charts) == EXPECTED_CHARTS
    assert facts.outcome.startswith("pushed as version ") and facts.outcome in text
    # The confusion matrix holds every eval example once; the eval split has 80.
    assert sum(map(sum, facts.confusion)) == facts.slices["overall"]["candidate"]["example_count"]
    assert facts.slices["overall"]["candidate"]["example_count"] == 80
    assert {"overall", "source=web", "domain=books"} <= set(facts.slices)
    # Every text check appears with its option, and the Evaluator's threshold that decided.
    assert all(check["option"] in text for check in facts.text_checks["checks"])
    assert "accuracy >= 0.6" in text and facts.blessed
    # The training values with the rule behind each.
    assert "80: set: training.train_steps" in text
    assert "0.001: from-scratch default: training.learning_rate is unset" in text
    assert facts.pushed["signed"] is False and facts.pushed["destination"] in text
    assert {row.component for row in facts.components} >= {
        "CsvExampleGen", "TextChecks", "DataGate", "Transform", "Trainer", "Evaluator",
        "TFLiteExport", "Pusher"}
    # A model trained from scratch has no TFLite tokenizer: said once, and the run still ships.
    assert facts.tflite["exported"] is False
    assert "no TFLite export: the model was trained from scratch" in text
    good_run_log = min((gate_workspace.output_dir / "logs").glob("run-*.log"))
    assert "no TFLite export: the model was trained from scratch" in good_run_log.read_text()
    assert "\nno TFLite export: the model was trained from scratch" in gate_workspace.good_stdout


def test_the_report_renders_in_headless_chromium_without_errors(shipped_report):
    _, path = shipped_report
    result = open_page(path.resolve().as_uri(), evaluate=RENDERED)

    assert result.errors == []
    assert result.evaluated["sections"] == [anchor for anchor, _ in SECTIONS]
    charts = result.evaluated["charts"]
    assert {chart["title"] for chart in charts} == EXPECTED_CHARTS
    for chart in charts:
        assert chart["width"] > 100 and chart["height"] > 50 and chart["marks"] > 0, chart


def test_the_screenshot_script_captures_the_whole_page(shipped_report, tmp_path):
    _, path = shipped_report
    png = tmp_path / "report.png"
    result = subprocess.run([sys.executable, "-m", "reporting.screenshot", str(path), str(png)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    height = int.from_bytes(data[20:24], "big")  # IHDR: the whole page, not one window
    assert height > 2000


def test_a_stopped_runs_report_says_what_stopped_it_and_what_never_ran(gate_workspace, tmp_path,
                                                                        capsys):
    [leak] = [case for case in CASES if case.name == "leaked_span"]
    overrides = leak.write(tmp_path / "leak", default_rows(400))
    code, stdout, _ = gate_workspace.run(tmp_path / "leak", *overrides)
    assert code != 0 and "report: " in stdout
    stopped_run_report = stdout.split("report: ")[1].split()[0]

    arguments = ["report", "--output", str(tmp_path / "again.html")]
    for override in gate_workspace.overrides():
        arguments += ["--set", override]
    assert cli.main(arguments) == 0
    assert re.search(r"run .*: stopped by the data gate", capsys.readouterr().out)
    for report in (tmp_path / "again.html", stopped_run_report):
        _, text = _outline(type(tmp_path)(report))
        assert "stopped by the data gate: nothing trained or pushed" in text
        assert re.search(r"leakage rate \(eval in train\) 0.25 crossed", text)
        assert "the run stopped before the Trainer" in text
        assert "the run stopped before the Evaluator" in text


def test_a_past_runs_report_renders_from_its_facts_without_tensorflow(gate_workspace, tmp_path):
    """The run kept its facts beside its report: `textclf report` for it, in a fresh process,
    shows the same page without importing TensorFlow, TFX, TFDV or TFMA (about a second)."""
    config = PipelineConfig.load(None, gate_workspace.overrides())
    arguments = ["report", "--run", gate_workspace.good_run_id,
                 "--output", str(tmp_path / "again.html")]
    for override in gate_workspace.overrides():
        arguments += ["--set", override]
    result, imported = run_cli(arguments)
    assert result.returncode == 0, result.stderr[-2000:]
    assert imported == []
    run_report = next(pathlib.Path(config.report_dir).glob(
        "run-" + re.sub(r"[^0-9A-Za-z]+", "", gate_workspace.good_run_id) + ".html"))
    again, original = _outline(tmp_path / "again.html"), _outline(run_report)
    assert again[1] == original[1] and again[0].charts == original[0].charts
