"""What a store version's manifest records of its TFLite export: whether there is one (or why
not) and each variant's verdict with its main figures. The per-slice figures stay in the
version's `tflite/tflite_report.json`, which the manifest's sums cover."""

from __future__ import annotations

from typing import Any

_KEPT = ("shipped", "reason", "file", "size_bytes", "accuracy", "accuracy_delta",
         "changed_labels", "max_probability_difference", "latency_p50_ms")


def manifest_entry(report: dict[str, Any]) -> dict[str, Any]:
    """The manifest's `tflite` entry for an export's report (`lite.layout.REPORT_FILE`)."""
    return {"exported": report["exported"], "reason": report.get("reason", ""),
            "shipped": report["shipped"],
            "variants": {variant: {key: figures[key] for key in _KEPT if key in figures}
                         for variant, figures in report["variants"].items()}}
