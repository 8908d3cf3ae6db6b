"""Median latency of one text through a .tflite on the light runtime (ai-edge-litert), as a
device runs it: a process that never imports TensorFlow.

Usage (from benchmarks/tflite_variants.py): python benchmarks/litert_latency.py MODEL TEXTS.json
Prints one JSON line: {"p50_ms", "p90_ms", "samples", "tensorflow_imported"}.
"""

from __future__ import annotations

import json
import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from lite.predictor import LiteClassifier  # noqa: E402


def main() -> None:
    model_path, texts_path = sys.argv[1:3]
    texts = json.loads(pathlib.Path(texts_path).read_text(encoding="utf-8"))
    classifier = LiteClassifier(model_path)
    classifier.predict(texts[:1])  # warm-up
    timings = []
    for text in texts:
        started = time.perf_counter()
        classifier.predict([text])
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    print(json.dumps({"p50_ms": round(statistics.median(timings), 3),
                      "p90_ms": round(timings[int(0.9 * (len(timings) - 1))], 3),
                      "samples": len(timings),
                      "tensorflow_imported": any(name.split(".")[0] == "tensorflow"
                                                 for name in sys.modules)}))


if __name__ == "__main__":
    main()
