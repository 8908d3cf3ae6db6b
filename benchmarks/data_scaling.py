"""How the data half of the DAG grows with its data: SST-2 train at 1x, 4x and 16x.

Usage:
  python benchmarks/data_scaling.py                  # about 40 minutes on 2 cores
  python benchmarks/data_scaling.py --scales 1,2     # a quick look

The data half (pre-flight, ExampleGen, StatisticsGen, SchemaGen, ExampleValidator, TextChecks,
DataGate, Transform: `run_local(..., last_node="Transform")`) fine-tuning the offline MiniLM,
on Beam's DirectRunner in multi-processing mode with two workers, over SST-2's train.tsv and
copies of it made distinct by a seeded shuffle of each text's words (dev.tsv is the eval split
at every size). Each size runs in its own process, from an empty output folder; its whole
process tree's resident memory is sampled from /proc and each sample is laid on the component
that ML Metadata says was running then.

Baseline, in the same run and measured the same way: TextChecks as it was before it moved to
Beam (commit a40d050, the split read into one process's memory), run after each size's Beam run
in the same output folder, so every other component comes from the cache and the report's
figures can be compared with the Beam version's on the same examples.

Writes benchmarks/results/data_scaling.json and data_scaling.svg (log-log: wall time and peak
memory against rows). The resolver of the last accepted data is recorded as FAILED on each size's
first run: there is no accepted data yet, and TextChecks then measures no drift.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import random
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.machine import result_header, write_result  # noqa: E402
from benchmarks.process_memory import TreeMemorySampler  # noqa: E402
from benchmarks.sst2_data import SST2_DIR, sst2_settings  # noqa: E402

RESULT_PATH = REPO_ROOT / "benchmarks" / "results" / "data_scaling.json"
# TextChecks before it moved to Beam: the in-memory baseline.
IN_MEMORY_TEXT_CHECKS_COMMIT = "a40d050"
BEAM_ARGS = "--direct_running_mode=multi_processing,--direct_num_workers=2"
# The data half's nodes in the order they run (the pre-flight is not a TFX node).
DATA_HALF = ("preflight", "CsvExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator",
             "last_accepted_data_resolver", "TextChecks", "DataGate", "Transform")
# Goals of the scaling issue, from 1x to the largest size.
MAX_TIME_EXPONENT = 1.1
MAX_MEMORY_GROWTH = 1.5


def distinct_copies(rows: list[tuple[str, str]], scale: int, seed: int = 0
                    ) -> list[tuple[str, str]]:
    """`rows` (text, label), then `scale - 1` copies of them with each text's words shuffled.

    A shuffle that gives a text already written (a one-word text, a text whose words are all the
    same) draws more shuffles and then adds words from the data's vocabulary until it is new, so
    the copies add no duplicates: the duplicate gate keeps judging the original's repeats.
    """
    from components.text_figures import text_key  # the gate's own notion of "the same text"

    generator = random.Random(seed)
    seen = {text_key([text]) for text, _ in rows}
    vocabulary = sorted({word for text, _ in rows for word in text.split()})
    scaled = list(rows)
    for _ in range(scale - 1):
        for text, label in rows:
            words = text.split()
            for attempt in range(100):
                generator.shuffle(words)
                if attempt >= 3:
                    words.insert(generator.randrange(len(words) + 1), generator.choice(vocabulary))
                copy = " ".join(words)
                if text_key([copy]) not in seen:
                    break
            seen.add(text_key([copy]))
            scaled.append((copy, label))
    return scaled


def write_scaled_sst2(scale: int, folder: pathlib.Path) -> int:
    """train.tsv at `scale` times SST-2's rows and SST-2's dev.tsv in `folder`; the train rows."""
    lines = (SST2_DIR / "train.tsv").read_text(encoding="utf-8").splitlines()
    header, rows = lines[0], [tuple(line.rsplit("\t", 1)) for line in lines[1:]]
    scaled = distinct_copies(rows, scale)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.tsv").write_text(
        header + "\n" + "".join(f"{text}\t{label}\n" for text, label in scaled), encoding="utf-8")
    (folder / "dev.tsv").write_bytes((SST2_DIR / "dev.tsv").read_bytes())
    return len(scaled)


def write_in_memory_text_checks(folder: pathlib.Path) -> None:
    """The in-memory TextChecks of IN_MEMORY_TEXT_CHECKS_COMMIT as module `in_memory_text_checks`."""
    source = subprocess.run(
        ["git", "show", f"{IN_MEMORY_TEXT_CHECKS_COMMIT}:components/text_checks.py"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "in_memory_text_checks.py").write_text(source, encoding="utf-8")


def run_data_half(arguments: argparse.Namespace) -> None:
    """The child process: one data half, timed, its MLMD executions written to `--report`."""
    from pipeline import pipeline as pipeline_module
    from pipeline.config import PipelineConfig
    from pipeline.local_runner import newest_artifact, newest_executions, run_local
    from pipeline.preflight import preflight

    if arguments.text_checks == "in_memory":
        import in_memory_text_checks  # pylint: disable=import-error  # written by the parent
        pipeline_module.TextChecks = in_memory_text_checks.TextChecks
    config = PipelineConfig.load(None, [
        *sst2_settings(pathlib.Path(arguments.data), arguments.checkpoint),
        f"output_dir={arguments.output}", f"beam_pipeline_args={BEAM_ARGS}"])
    started = time.time()
    inputs = preflight(config)
    windows = {"preflight": (started, time.time(), "COMPLETE")}
    run_local(config, inputs, last_node="Transform")
    for component, execution in newest_executions(config).items():
        windows[component] = (execution.create_time_since_epoch / 1000,
                              execution.last_update_time_since_epoch / 1000,
                              execution.State.Name(execution.last_known_state))
    report_file = pathlib.Path(newest_artifact(config, "textclf.TextChecksReport").uri,
                               "text_checks.json")
    pathlib.Path(arguments.report).write_text(json.dumps(
        {"windows": windows, "text_checks": json.loads(report_file.read_text(encoding="utf-8"))}),
        encoding="utf-8")


def measure_child(arguments: list[str], log_path: pathlib.Path, python_path: str) -> dict:
    """Runs one data half in a child process; its wall time, windows and memory samples."""
    report_path = log_path.with_suffix(".json")
    environment = {**os.environ, "PYTHONPATH": python_path}
    started = time.time()
    with open(log_path, "w", encoding="utf-8") as log:
        child = subprocess.Popen(
            [sys.executable, __file__, "--child", "--report", str(report_path), *arguments],
            stdout=log, stderr=subprocess.STDOUT, env=environment, cwd=REPO_ROOT)
        sampler = TreeMemorySampler(child.pid)
        sampler.start()
        code = child.wait()
        sampler.stop()
    if code:
        raise SystemExit(f"the data half failed (exit {code}); see {log_path}")
    measured = json.loads(report_path.read_text(encoding="utf-8"))
    components = {}
    for name in DATA_HALF:
        if name not in measured["windows"]:
            continue
        start, end, state = measured["windows"][name]
        components[name] = {"seconds": round(end - start, 1), "state": state,
                            "peak_resident_mib": round(sampler.peak_between(start, end) / 2**20)}
    starts = [window[0] for window in measured["windows"].values()]
    ends = [window[1] for window in measured["windows"].values()]
    return {"process_seconds": round(time.time() - started, 1),
            "data_half_seconds": round(max(ends) - min(starts), 1),
            "peak_resident_mib": round(max(resident for _, resident in sampler.samples) / 2**20),
            "data_half_peak_resident_mib": round(sampler.peak_between(min(starts), max(ends))
                                                 / 2**20),
            "components": components, "text_checks": measured["text_checks"]}


def fitted_exponent(rows: list[int], values: list[float]) -> float:
    """The slope of log(value) against log(rows), least squares: 1.0 is linear growth."""
    xs, ys = [math.log(row) for row in rows], [math.log(value) for value in values]
    x_mean, y_mean = sum(xs) / len(xs), sum(ys) / len(ys)
    return (sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, ys))
            / sum((x - x_mean) ** 2 for x in xs))


def linear_fit(rows: list[int], values: list[float]) -> tuple[float, float]:
    """(fixed cost, cost per row) of value = fixed + per_row * rows, least squares."""
    x_mean, y_mean = sum(rows) / len(rows), sum(values) / len(values)
    per_row = (sum((x - x_mean) * (y - y_mean) for x, y in zip(rows, values))
               / sum((x - x_mean) ** 2 for x in rows))
    return y_mean - per_row * x_mean, per_row


def summary(sizes: list[dict]) -> dict:
    """Every size's figures with the growth from the first to the last and the goals met."""
    rows = [size["rows"] for size in sizes]

    def exponent(value_of) -> float:
        return round(fitted_exponent(rows, [value_of(size) for size in sizes]), 3)

    def growth(value_of) -> float:
        return round(value_of(sizes[-1]) / value_of(sizes[0]), 3)

    def beam_component(name: str, figure: str):
        return lambda size: size["beam"]["components"][name][figure]

    def in_memory_text_checks(figure: str):
        return lambda size: size["in_memory"]["components"]["TextChecks"][figure]

    fixed, per_row = linear_fit(rows, [size["beam"]["data_half_seconds"] for size in sizes])
    result = {
        "sizes": sizes,
        "time_exponent": {
            "data_half": exponent(lambda size: size["beam"]["data_half_seconds"]),
            **{name: exponent(beam_component(name, "seconds"))
               for name in ("preflight", "CsvExampleGen", "StatisticsGen", "TextChecks",
                            "Transform")},
            "TextChecks_in_memory": exponent(in_memory_text_checks("seconds"))},
        "data_half_linear_fit": {"fixed_seconds": round(fixed, 1),
                                 "seconds_per_million_rows": round(per_row * 1e6, 1)},
        "memory_growth": {
            "data_half": growth(lambda size: size["beam"]["data_half_peak_resident_mib"]),
            "TextChecks": growth(beam_component("TextChecks", "peak_resident_mib")),
            "TextChecks_in_memory": growth(in_memory_text_checks("peak_resident_mib"))},
        "goals": {"max_time_exponent": MAX_TIME_EXPONENT, "max_memory_growth": MAX_MEMORY_GROWTH},
    }
    result["goals_met"] = {
        "time": result["time_exponent"]["data_half"] <= MAX_TIME_EXPONENT,
        "memory": result["memory_growth"]["data_half"] <= MAX_MEMORY_GROWTH,
        "same_figures": all(size["same_figures"] for size in sizes)}
    return result


def log_log_chart(sizes: list[dict]) -> str:
    """Wall time and peak memory of both TextChecks and the whole data half against rows."""
    from reporting.charts import line_chart

    def series(value_of) -> list[tuple[float, float]]:
        return [(math.log10(size["rows"]), math.log10(value_of(size))) for size in sizes]

    time_chart, memory_chart = (line_chart(
        f"log10 {what} against log10 rows", {
            "data half": series(lambda size: size["beam"][f"data_half_{figure}"]),
            "checks, Beam": series(
                lambda size: size["beam"]["components"]["TextChecks"][figure]),
            "checks, memory": series(
                lambda size: size["in_memory"]["components"]["TextChecks"][figure])},
        x_label="log10 rows (train + eval)")
        for what, figure in (("seconds", "seconds"), ("peak resident MiB", "peak_resident_mib")))
    # Two charts, one file: the second below the first.
    return ('<svg xmlns="http://www.w3.org/2000/svg" width="640" height="500">'
            f'{time_chart}<g transform="translate(0,250)">{memory_chart}</g></svg>\n')


def _same_figures(beam: dict, in_memory: dict) -> bool:
    """Both TextChecks versions found the same counts and judged the Beam run's checks alike
    (the in-memory run, second in the folder, also measures drift against the first: its two
    drift checks are the only ones the Beam run does not have)."""
    def checks(report: dict) -> dict:
        return {(check["name"], check["scope"]): (round(check["value"], 6), check["passed"])
                for check in report["checks"]}
    beam_checks, in_memory_checks = checks(beam), checks(in_memory)
    drift = {key for key in in_memory_checks if key[0].endswith("_drift")}
    return (bool(beam_checks) and beam["splits"] == in_memory["splits"]
            and set(in_memory_checks) - drift == set(beam_checks)
            and all(in_memory_checks[key] == value for key, value in beam_checks.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", default="1,4,16", help="copies of SST-2 train, e.g. 1,4,16")
    parser.add_argument("--result", default=str(RESULT_PATH),
                        help="JSON to write (the SVG goes beside it); empty: print only")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--report", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    parser.add_argument("--text-checks", choices=("beam", "in_memory"), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        run_data_half(arguments)
        return

    from pipeline.offline_checkpoint import install_offline_checkpoint
    checkpoint = install_offline_checkpoint()
    scales = sorted({int(scale) for scale in arguments.scales.split(",")})
    if len(scales) < 2 or scales[0] < 1:
        parser.error("--scales needs at least two sizes of 1 or more, e.g. 1,4,16")
    sizes = []
    with tempfile.TemporaryDirectory(prefix="data-scaling-") as work:
        work_dir = pathlib.Path(work)
        write_in_memory_text_checks(work_dir / "baseline")
        python_path = os.pathsep.join([str(REPO_ROOT), str(work_dir / "baseline")])
        for scale in scales:
            data_dir, output_dir = work_dir / f"data-{scale}x", work_dir / f"outputs-{scale}x"
            train_rows = write_scaled_sst2(scale, data_dir)
            eval_rows = len((data_dir / "dev.tsv").read_text(encoding="utf-8").splitlines()) - 1
            size = {"scale": scale, "train_rows": train_rows, "eval_rows": eval_rows,
                    "rows": train_rows + eval_rows,
                    "input_mib": round(sum(path.stat().st_size for path in data_dir.iterdir())
                                       / 2**20, 1)}
            for arm in ("beam", "in_memory"):
                print(f"{scale}x ({size['rows']:,} rows): data half with TextChecks {arm} ...",
                      flush=True)
                size[arm] = measure_child(
                    ["--data", str(data_dir), "--output", str(output_dir),
                     "--checkpoint", str(checkpoint), "--text-checks", arm],
                    work_dir / f"run-{scale}x-{arm}.log", python_path)
                print(f"  {size[arm]['data_half_seconds']} s, peak "
                      f"{size[arm]['data_half_peak_resident_mib']} MiB; " + ", ".join(
                          f"{name} {figures['seconds']} s {figures['peak_resident_mib']} MiB"
                          for name, figures in size[arm]["components"].items()
                          if figures["state"] == "COMPLETE"), flush=True)
            size["same_figures"] = _same_figures(size["beam"].pop("text_checks"),
                                                 size["in_memory"].pop("text_checks"))
            sizes.append(size)

    result = {
        **result_header("the data half of the DAG (pre-flight to Transform, fine-tuning MiniLM) "
                        "on SST-2 train copied 1x to 16x, DirectRunner multi-processing with 2 "
                        "workers; baseline: the in-memory TextChecks of "
                        f"{IN_MEMORY_TEXT_CHECKS_COMMIT} on the same examples"),
        "beam_pipeline_args": BEAM_ARGS.split(","), **summary(sizes)}
    print(json.dumps(result, indent=2))
    if arguments.result:
        write_result(result, arguments.result)
        pathlib.Path(arguments.result).with_suffix(".svg").write_text(log_log_chart(sizes),
                                                                       encoding="utf-8")


if __name__ == "__main__":
    main()
