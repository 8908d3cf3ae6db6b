"""What the run report shows (`RunFacts`), and its JSON form.

Reading a run's facts from ML Metadata and its artifacts needs TensorFlow, TFDV and TFMA (half a
minute of imports); a run keeps its facts as JSON beside its report, so a past run's report is
rendered again from them in about a second (`reporting.html_report.write_run_report`).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Optional


@dataclasses.dataclass
class ComponentRow:
    component: str
    state: str
    seconds: Optional[float]


@dataclasses.dataclass
class RunFacts:
    """Everything the report shows; a field is empty when the run never got that far."""

    pipeline_name: str
    run_id: str
    outcome: str
    # The message of the failure that ended the run, when the caller knows it.
    error: str = ""
    components: list[ComponentRow] = dataclasses.field(default_factory=list)
    span: Optional[int] = None
    # Split -> one row per feature of TFDV's statistics.
    statistics: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    anomalies: list[str] = dataclasses.field(default_factory=list)
    text_checks: Optional[dict[str, Any]] = None
    gate_state: str = "not run"
    gate_problems: list[str] = dataclasses.field(default_factory=list)
    # Chart -> series name -> (step or epoch, value).
    training_curves: dict[str, dict[str, list[tuple[float, float]]]] = dataclasses.field(
        default_factory=dict)
    training_stats: Optional[dict[str, Any]] = None
    slices: dict[str, dict[str, dict[str, float]]] = dataclasses.field(default_factory=dict)
    label_names: list[str] = dataclasses.field(default_factory=list)
    confusion: Optional[list[list[float]]] = None
    # {"metric", "slices", "kind" (lower bound, upper bound, change), "value", "rule"}.
    thresholds: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    validation_failures: list[str] = dataclasses.field(default_factory=list)
    blessed: Optional[bool] = None
    baseline_model: Optional[str] = None
    pushed: Optional[dict[str, Any]] = None
    # TFLiteExport's report (`lite.layout.REPORT_FILE`): each variant's figures and verdict, or
    # why there is no export.
    tflite: Optional[dict[str, Any]] = None
    # (component, output key, uri) of every artifact the run produced or reused.
    artifacts: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)


def facts_to_json(facts: RunFacts) -> str:
    return json.dumps(dataclasses.asdict(facts), default=_plain)  # in order: the page lists as read


def facts_from_json(text: str) -> RunFacts:
    """The facts `facts_to_json` wrote; ValueError for anything else (another version's JSON)."""
    try:
        values = json.loads(text)
        values["components"] = [ComponentRow(**row) for row in values["components"]]
        return RunFacts(**values)
    except (KeyError, TypeError) as error:
        raise ValueError(f"not a run's facts: {error}") from error


def _plain(value: Any) -> Any:
    """numpy numbers and arrays (TFDV and TFMA figures) as JSON numbers and lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON")
