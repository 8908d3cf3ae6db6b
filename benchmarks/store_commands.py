"""How long the store's emergency commands take: `textclf models list` and `models rollback`.

Usage: python benchmarks/store_commands.py [--versions 5] [--model-mb 90] [--repeats 3]
       (or `make bench`); writes benchmarks/results/store_commands.json.

A signed store of N versions, each a folder the size of the fine-tuned MiniLM SavedModel
(random bytes: the store hashes every file alike), checked with the verify key as a production
server's settings would. Each command runs as a user runs it, the `textclf` script in a fresh
process, so imports count. Baselines in the same run: the interpreter starting (`python -c
pass`) and `import tensorflow`, which the commands no longer pay for a local store.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.machine import result_header, write_result  # noqa: E402
from serving import signing  # noqa: E402
from serving.store import ModelStore  # noqa: E402

RESULT_PATH = REPO_ROOT / "benchmarks" / "results" / "store_commands.json"
MODEL_NAME = "reviews"
TARGET_SECONDS = 5.0


def _model_folder(path: pathlib.Path, megabytes: int) -> None:
    (path / "variables").mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(os.urandom(1 << 20))
    (path / "variables" / "variables.index").write_bytes(os.urandom(4096))
    with (path / "variables" / "variables.data-00000-of-00001").open("wb") as weights:
        for _ in range(max(megabytes - 1, 1)):
            weights.write(os.urandom(1 << 20))


def _seconds(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return time.perf_counter() - started


def _summary(times: list[float]) -> dict:
    return {"median_s": round(statistics.median(times), 3), "max_s": round(max(times), 3),
            "runs": len(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--versions", type=int, default=5)
    parser.add_argument("--model-mb", type=int, default=90)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--result", default=str(RESULT_PATH), help="'' to skip writing")
    args = parser.parse_args()
    textclf = str(pathlib.Path(sys.executable).parent / "textclf")

    with tempfile.TemporaryDirectory() as scratch:
        scratch_dir = pathlib.Path(scratch)
        _model_folder(scratch_dir / "model", args.model_mb)
        signing.generate_key_pair(scratch_dir / "private.pem", scratch_dir / "public.pem")
        signing_key = signing.load_signing_key(str(scratch_dir / "private.pem"))
        pristine = scratch_dir / "pristine"
        store = ModelStore(str(pristine / "serving_models"), MODEL_NAME)
        for _ in range(args.versions):
            store.publish(str(scratch_dir / "model"), {"metrics": {"accuracy": 0.9}},
                          signing_key=signing_key)
        options = ["--output-dir", str(scratch_dir / "out"), "--set", f"model_name={MODEL_NAME}",
                   "--set", f"serving.verify_key_file={scratch_dir / 'public.pem'}"]
        times: dict[str, list[float]] = {"python -c pass": [], "import tensorflow": [],
                                         "textclf models list": [],
                                         "textclf models rollback": []}
        for repeat in range(args.repeats):
            # Every repeat starts from the same 5-version store.
            shutil.rmtree(scratch_dir / "out", ignore_errors=True)
            shutil.copytree(pristine, scratch_dir / "out")
            times["python -c pass"].append(_seconds([sys.executable, "-c", "pass"]))
            times["import tensorflow"].append(_seconds([sys.executable, "-c",
                                                        "import tensorflow"]))
            times["textclf models list"].append(_seconds([textclf, "models", "list", *options]))
            times["textclf models rollback"].append(_seconds(
                [textclf, "models", "rollback", *options, "--reason", "benchmark"]))
            print(f"repeat {repeat + 1}/{args.repeats}:",
                  {name: round(values[-1], 2) for name, values in times.items()}, flush=True)
    summaries = {name: _summary(values) for name, values in times.items()}
    tensorflow_import = summaries["import tensorflow"]["median_s"]
    result = {
        **result_header("textclf models list / rollback on a signed local store, each a fresh "
                        "process, against the interpreter start and a TensorFlow import"),
        "setup": {"versions": args.versions, "model_mb_per_version": args.model_mb,
                  "signed_and_verified": True, "repeats": args.repeats,
                  "target_s": TARGET_SECONDS},
        "commands": summaries,
        "within_target": {name: summaries[name]["max_s"] < TARGET_SECONDS
                          for name in ("textclf models list", "textclf models rollback")},
        "command_to_tensorflow_import": {
            name: round(summaries[name]["median_s"] / tensorflow_import, 2)
            for name in ("textclf models list", "textclf models rollback")},
    }
    print(result)
    if args.result:
        write_result(result, args.result)


if __name__ == "__main__":
    main()
