"""The TFLite variants of MiniLM fine-tuned on SST-2: size, dev accuracy, changed labels and
latency of one text against the SavedModel, all five variants, in one run.

Usage:
  python benchmarks/tflite_variants.py     # about 20 minutes: 32,000 training sentences, 1 epoch
  python benchmarks/tflite_variants.py --train-rows 0 --epochs 3   # all of SST-2 (about an hour)

Fine-tunes through the whole pipeline (`benchmarks/sst2_finetune.py`, the same options) with
every variant configured, so TFLiteExport measures each against the SavedModel on all 872 dev
sentences and the gate decides as in any run. The latencies of the run's report are TensorFlow's
own TFLite interpreter in the pipeline's process; each variant's file is also timed on the light
runtime a device uses (ai-edge-litert, `benchmarks/litert_latency.py`, a process without
TensorFlow), on the same dev sentences. Writes benchmarks/results/tflite_variants.json.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.machine import result_header, write_result  # noqa: E402
from benchmarks.sst2_finetune import argument_parser, run_sst2  # noqa: E402
from lite.layout import REFUSED_DIR, REPORT_FILE, SHIPPED_DIR, model_file  # noqa: E402
from pipeline.config import TFLITE_VARIANTS  # noqa: E402
from pipeline.local_runner import newest_artifact  # noqa: E402

RESULT_PATH = REPO_ROOT / "benchmarks" / "results" / "tflite_variants.json"
# The goal of the TFLite issue: an int8 variant this small, this close to the SavedModel.
TARGET_SIZE_RATIO, TARGET_ACCURACY_DROP = 1 / 3, 0.01


def litert_latency(model_path: pathlib.Path, texts_path: pathlib.Path) -> dict:
    result = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "litert_latency.py"),
                             str(model_path), str(texts_path)], capture_output=True, text=True,
                            check=True, cwd=REPO_ROOT, timeout=1800)
    return json.loads(result.stdout.splitlines()[-1])


def main() -> None:
    parser = argument_parser(__doc__.split("\n", 1)[0])
    parser.add_argument("--latency-texts", type=int, default=200,
                        help="dev sentences timed one by one on the light runtime")
    parser.set_defaults(train_rows=32000, epochs=1, learning_rate=1e-4,
                        output_dir=str(REPO_ROOT / "outputs" / "bench_tflite"),
                        result=str(RESULT_PATH))
    args = parser.parse_args()
    config, outcome, figures = run_sst2(args, (f"tflite.variants={','.join(TFLITE_VARIANTS)}",
                                               "tflite.eval_examples=0"))
    export_dir = pathlib.Path(newest_artifact(config, "textclf.TFLiteModels").uri)
    report = json.loads((export_dir / REPORT_FILE).read_text(encoding="utf-8"))
    dev_texts = [line.split("\t")[0] for line in (pathlib.Path(args.data_dir) / "dev.tsv")
                 .read_text(encoding="utf-8").splitlines()[1:]][:args.latency_texts]
    variants = {}
    with tempfile.TemporaryDirectory() as work:
        texts_path = pathlib.Path(work, "texts.json")
        texts_path.write_text(json.dumps(dev_texts), encoding="utf-8")
        for variant, measured in report["variants"].items():
            folder = SHIPPED_DIR if measured["shipped"] else REFUSED_DIR
            model_path = export_dir / folder / model_file(variant)
            figures_of_variant = {key: value for key, value in measured.items() if key != "slices"}
            if model_path.exists():
                light = litert_latency(model_path, texts_path)
                figures_of_variant["litert_latency_p50_ms"] = light["p50_ms"]
                figures_of_variant["litert_latency_ratio"] = round(
                    light["p50_ms"] / report["saved_model"]["latency_p50_ms"], 3)
                figures_of_variant["litert_without_tensorflow"] = not light["tensorflow_imported"]
            variants[variant] = figures_of_variant
    int8_ok = [variant for variant in ("dynamic_range", "int8", "int8_full")
               if variants.get(variant, {}).get("size_ratio", 1) <= TARGET_SIZE_RATIO
               and variants[variant]["accuracy_delta"] >= -TARGET_ACCURACY_DROP]
    result = {
        **result_header("TFLite variants of all-MiniLM-L6-v2 fine-tuned on SST-2: each against "
                        "the SavedModel on the 872 dev sentences"),
        **figures,
        "pushed_model_dir": outcome.pushed_model_dir,
        "shipped": list(outcome.tflite_shipped),
        "saved_model": report["saved_model"],
        "thresholds": report["thresholds"],
        "variants": variants,
        "target": {"size_ratio_at_most": round(TARGET_SIZE_RATIO, 4),
                   "accuracy_drop_at_most": TARGET_ACCURACY_DROP, "met_by": int8_ok},
    }
    write_result(result, args.result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
