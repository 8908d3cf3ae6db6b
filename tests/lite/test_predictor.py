"""The device-side predictor: ai-edge-litert and tensorflow-text's kernels, in processes that never
import TensorFlow, answering as TensorFlow's own TFLite interpreter does."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np

from lite.convert import interpreter, predict
from lite.predictor import FRAMEWORK_FILE, REGISTRAR_FILE, ops_files
from modules import features
from tests.conftest import REPO_ROOT

TEXTS = ["A gripping, beautifully acted film.", "", "Dull, and far too long.", "中国 café ✓"]
# Runs in a fresh interpreter: classifies, then proves TensorFlow never loaded.
_PREDICT = """
import json, sys
from lite.predictor import LiteClassifier
outputs = LiteClassifier(sys.argv[1], sys.argv[2] or None).predict(json.loads(sys.argv[3]))
assert not [name for name in sys.modules if name.split(".")[0] in ("tensorflow", "tensorflow_text")], sorted(sys.modules)
print(json.dumps({name: value.tolist() if value.dtype != object else [item.decode() for item in value]
                  for name, value in outputs.items()}))
"""


def _run(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *arguments], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})


def test_the_light_runtime_answers_as_tensorflows_interpreter_without_importing_it(
        tiny_float32_model, tmp_path):
    model_path = tmp_path / "model-float32.tflite"
    model_path.write_bytes(tiny_float32_model)
    result = _run("-c", _PREDICT, str(model_path), "", json.dumps(TEXTS))
    assert result.returncode == 0, result.stderr[-3000:]
    answers = json.loads(result.stdout.splitlines()[-1])

    expected = predict(interpreter(tiny_float32_model), TEXTS)
    np.testing.assert_allclose(answers[features.PROBABILITIES],
                               expected[features.PROBABILITIES], atol=1e-5)
    assert answers[features.PREDICTED_LABEL] == [
        label.decode() for label in expected[features.PREDICTED_LABEL]]


def test_a_device_folder_with_the_two_kernel_files_is_enough(tiny_float32_model, tmp_path):
    """What a device copies: the model, tflite_registrar.so and libtensorflow_framework.so.2
    (in one folder, away from any TensorFlow wheel); `textclf-lite` prints one JSON line per
    text."""
    device = tmp_path / "device"
    device.mkdir()
    for path in ops_files():
        shutil.copyfile(path, device / pathlib.Path(path).name)
    (device / "model.tflite").write_bytes(tiny_float32_model)
    assert sorted(path.name for path in device.iterdir()) == sorted(
        [FRAMEWORK_FILE, REGISTRAR_FILE, "model.tflite"])

    result = _run("-m", "lite.predictor", str(device / "model.tflite"), *TEXTS[:2],
                  "--ops-dir", str(device))
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["text"] for line in lines] == TEXTS[:2]
    assert all(line["label"] in ("negative", "positive") and
               abs(sum(line["probabilities"]) - 1) < 1e-4 for line in lines)

    (device / FRAMEWORK_FILE).unlink()
    missing = _run("-m", "lite.predictor", str(device / "model.tflite"), "text",
                   "--ops-dir", str(device))
    assert missing.returncode == 2
    assert f"{FRAMEWORK_FILE} is missing: a device needs {REGISTRAR_FILE} and" in missing.stderr
