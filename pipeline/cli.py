"""`textclf`: the project's command line.

`run` runs the pipeline on this machine; `retrain` runs it only for a new data span; `compile`,
`submit` and `schedule` compile it for Kubeflow Pipelines and operate runs there; `serve` serves
the pushed models, `rollout` steers a canary or shadow release, `models` lists, rolls back and
signs them, `audit verify` checks the prediction audit log; `report` renders a run's HTML
report and `schema export` starts a reviewed schema.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import pathlib
import sys
import time
from typing import Iterator, Optional, Sequence

from pipeline.config import ConfigError, PipelineConfig
from pipeline.notifications import notify
from pipeline.preflight import PREFLIGHT_ERRORS, RunInputs, preflight
from serving import commands as serving_commands
from serving import rollout_commands

# Exit codes besides 0 (pushed) and 1 (the run failed; traceback in the log).
EXIT_BAD_INPUT = 2  # bad configuration or input data: nothing trained
EXIT_NOT_BLESSED = 3  # the run worked but the Evaluator refused the model: CI jobs should notice
EXIT_KUBEFLOW_API = 4  # the Kubeflow Pipelines endpoint is unreachable or refused the call
EXIT_DATA_REJECTED = 5  # a gate (DataGate, TokenizerParity) stopped the run: nothing trained

# Named flags for the options people change most; `--set section.key=value` reaches every other.
_FLAG_TO_KEY = {
    "data_path": "data.path",
    "delimiter": "data.delimiter",
    "encoding": "data.encoding",
    "text_column": "data.text_column",
    "text_pair_column": "data.text_pair_column",
    "label_column": "data.label_column",
    "slice_columns": "data.slice_columns",
    "label_values": "data.label_values",
    "train_pattern": "data.train_pattern",
    "eval_pattern": "data.eval_pattern",
    "file_pattern": "data.file_pattern",
    "train_steps": "training.train_steps",
    "epochs": "training.epochs",
    "learning_rate": "training.learning_rate",
    "pretrained": "model.pretrained",
    "output_dir": "output_dir",
    "orchestrator": "orchestrator",
    "host": "serving.host",
    "port": "serving.port",
    "rollout": "serving.rollout.mode",
}
# On Kubeflow the data lives in the cluster's storage: --data-path sets that instead.
_KUBEFLOW_COMMANDS = ("compile", "submit", "schedule")


def _config_options() -> argparse.ArgumentParser:
    """The options every subcommand that builds the pipeline takes."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--config", help="YAML file with any of the PipelineConfig sections")
    options.add_argument("--set", dest="overrides", action="append", default=[],
                         metavar="SECTION.KEY=VALUE", help="override one option (repeatable)")
    options.add_argument("--data-path", help="CSV/TSV file or folder of them (data.path); for "
                         "Kubeflow commands the cluster's data folder (kubeflow.data_path)")
    options.add_argument("--delimiter", help="column delimiter; 'tab' or '\\t' for TSV")
    options.add_argument("--encoding", help="the files' text encoding (data.encoding), e.g. "
                         "latin-1, cp1252, utf-16; default utf-8")
    options.add_argument("--text-column")
    options.add_argument("--text-pair-column", help="second text column of sentence-pair tasks")
    options.add_argument("--label-column")
    options.add_argument("--slice-columns", help="comma-separated metadata columns to slice by")
    options.add_argument("--label-values", help="comma-separated allowed labels, in id order")
    options.add_argument("--train-pattern", help="train file pattern inside --data-path, e.g. train.tsv")
    options.add_argument("--eval-pattern", help="eval file pattern inside --data-path, e.g. dev.tsv")
    options.add_argument("--file-pattern", help="files to hash-split inside --data-path, e.g. "
                         "span-{SPAN}/*.csv for data that arrives in spans")
    options.add_argument("--train-steps", help="total optimiser steps (default: 300 from "
                         "scratch; fine-tuning: --epochs passes over the training rows)")
    options.add_argument("--epochs", help="passes over the training rows when fine-tuning "
                         "without --train-steps; else the epochs --train-steps is cut into")
    options.add_argument("--learning-rate", help="peak learning rate (default: 1e-3 from "
                         "scratch, 5e-5 fine-tuning)")
    options.add_argument("--pretrained", help="checkpoint folder or hub id to fine-tune "
                         "(model.pretrained); `make pretrained` prints an offline one")
    options.add_argument("--output-dir", help="folder for the pipeline root, MLMD and serving store")
    options.add_argument("--no-cache", action="store_true", help="re-execute every component")
    return options


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="textclf", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    options = _config_options()
    orchestrator = argparse.ArgumentParser(add_help=False)
    orchestrator.add_argument("--orchestrator", choices=("local", "beam"),
                              help="LocalDagRunner (default) or BeamDagRunner")
    commands.add_parser("run", parents=[options, orchestrator],
                        help="run the whole pipeline on this machine")
    retrain = commands.add_parser(
        "retrain", parents=[options, orchestrator],
        help="run the pipeline only if the data has a span newer than the last trained one")
    retrain.add_argument("--kubeflow", action="store_true",
                         help="look in the cluster's data and metadata and submit the run there")
    compile_command = commands.add_parser(
        "compile", parents=[options], help="write the Kubeflow Pipelines v2 spec (YAML)")
    compile_command.add_argument("--output", help="spec path (default kubeflow.package_path)")
    package = argparse.ArgumentParser(add_help=False)
    package.add_argument("--package", help="a spec from `textclf compile`; compiled afresh if not given")
    submit = commands.add_parser("submit", parents=[options, package],
                                 help="start one run on Kubeflow Pipelines")
    submit.add_argument("--run-name", help="display name of the run (default: pipeline name + time)")
    schedule = commands.add_parser("schedule", help="recurring runs on Kubeflow Pipelines")
    actions = schedule.add_subparsers(dest="action", required=True)
    for action, text in (("create", "create the recurring run, replacing one of the same name"),
                         ("update", "replace an existing recurring run")):
        command = actions.add_parser(action, parents=[options, package], help=text)
        command.add_argument("name")
        command.add_argument("--cron", required=True,
                             help="5-field cron ('0 3 * * *') or KFP's 6-field form with seconds")
    actions.add_parser("list", parents=[options], help="list the experiment's recurring runs")
    delete = actions.add_parser("delete", parents=[options], help="delete a recurring run")
    delete.add_argument("name")
    cluster_store = argparse.ArgumentParser(add_help=False)
    cluster_store.add_argument("--kubeflow", action="store_true",
                               help="the store a Kubeflow run pushes to (kubeflow.serving_root) "
                                    "instead of the local one under --output-dir")
    serve = commands.add_parser("serve", parents=[options, cluster_store],
                                help="serve the newest good version over HTTP (KServe V1 and V2)")
    serve.add_argument("--host", help="interface to listen on (serving.host)")
    serve.add_argument("--port", help="port (serving.port)")
    serve.add_argument("--rollout", choices=("immediate", "canary", "shadow"),
                       help="how a newer version reaches traffic (serving.rollout.mode; the "
                            "steps and thresholds are serving.rollout.*)")
    rollout = commands.add_parser("rollout", help="the canary or shadow rollout in the store")
    rollout_actions = rollout.add_subparsers(dest="action", required=True)
    rollout_status = rollout_actions.add_parser(
        "status", parents=[options, cluster_store],
        help="the two versions, the step, who decides and the last decision")
    rollout_status.add_argument("--server", metavar="URL",
                                help="also show this server's step window (admin token from "
                                     "TEXTCLF_SERVING_TOKEN)")
    for action, text in (("promote", "make the candidate the stable version now"),
                         ("pause", "hold the candidate's share; no automatic decisions"),
                         ("resume", "go on deciding, from a new step window"),
                         ("abort", "reject the candidate; the stable version takes all traffic")):
        command = rollout_actions.add_parser(action, parents=[options, cluster_store], help=text)
        command.add_argument("--reason", default="no reason given", help="kept in the state and "
                                                                          "the history")
    models = commands.add_parser("models", help="the versioned serving store")
    model_actions = models.add_subparsers(dest="action", required=True)
    listing = model_actions.add_parser("list", parents=[options, cluster_store],
                                       help="every version, newest first")
    listing.add_argument("--server", metavar="URL",
                         help="also ask this running server which version it serves and which "
                              "it refused (token from TEXTCLF_SERVING_TOKEN)")
    rollback = model_actions.add_parser(
        "rollback", parents=[options, cluster_store],
        help="serve the previous good version (or --to VERSION); newer ones are marked rejected")
    rollback.add_argument("--to", type=int, help="the version to serve again")
    rollback.add_argument("--reason", default="rolled back by hand", help="kept in the history")
    export_tflite = model_actions.add_parser(
        "export-tflite", parents=[options, cluster_store],
        help="convert a published version to the TFLite variants of tflite.variants, measure "
             "them on the examples its Evaluator saw, and add those that keep the accuracy to it")
    export_tflite.add_argument("version", type=int, help="the published version")
    audit = commands.add_parser("audit", help="the serving audit log (serving.audit.path)")
    audit_actions = audit.add_subparsers(dest="action", required=True)
    verify = audit_actions.add_parser("verify", parents=[options],
                                      help="check the hash chain across rotations; names the "
                                           "first bad line")
    verify.add_argument("--log", help="the log to check (default: serving.audit.path)")
    report = commands.add_parser("report", parents=[options],
                                 help="render the HTML report of a run (default: the newest)")
    report.add_argument("--run", help="the run id (pipeline_run name in ML Metadata)")
    report.add_argument("--output", help="file to write (default outputs/reports/run-<id>.html)")
    schema = commands.add_parser("schema", help="the reviewed schema (data.schema_file)")
    schema_actions = schema.add_subparsers(dest="action", required=True)
    export = schema_actions.add_parser(
        "export", parents=[options],
        help="write the newest inferred schema, made reviewable, for data.schema_file")
    export.add_argument("--to", help="file to write (default schemas/<pipeline_name>.pbtxt)")
    keygen = model_actions.add_parser("keygen", help="write an Ed25519 key pair for signing")
    keygen.add_argument("private_key")
    keygen.add_argument("public_key")
    return parser


def load_config(args: argparse.Namespace) -> PipelineConfig:
    """The configuration file, then `--set` overrides, then the named flags."""
    flag_keys = dict(_FLAG_TO_KEY)
    if args.command in _KUBEFLOW_COMMANDS or getattr(args, "kubeflow", False):
        flag_keys["data_path"] = "kubeflow.data_path"
    overrides = list(args.overrides)
    overrides += [f"{key}={getattr(args, flag)}" for flag, key in flag_keys.items()
                  if getattr(args, flag, None) is not None]
    if getattr(args, "no_cache", False):
        overrides.append("enable_cache=false")
    return PipelineConfig.load(args.config, overrides)


@contextlib.contextmanager
def _log_to_file(log_dir: str) -> Iterator[pathlib.Path]:
    """Sends INFO logs (TFX, Beam, Keras) to stderr and, while the run lasts, to a per-run file."""
    from absl import logging as absl_logging  # pylint: disable=import-outside-toplevel

    absl_logging.set_verbosity(absl_logging.INFO)
    log_path = pathlib.Path(log_dir, time.strftime("run-%Y%m%d-%H%M%S.log"))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)
    try:
        yield log_path
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def _run(config: PipelineConfig, retrain_only: bool = False) -> int:
    """Runs the pipeline here; with `retrain_only`, only when the data holds a new span."""
    started = time.monotonic()
    try:
        inputs = preflight(config)
    except PREFLIGHT_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        notify(config.notifications, "failure",
               f"textclf {config.pipeline_name}: the run did not start: bad input",
               {"pipeline": config.pipeline_name, "error": str(error)})
        return EXIT_BAD_INPUT
    with _log_to_file(config.log_dir) as log_path:
        if not retrain_only:
            return _execute(config, inputs, log_path, started)
        from pipeline.metadata import metadata_store_of  # pylint: disable=import-outside-toplevel
        from pipeline.retrain import retrain  # pylint: disable=import-outside-toplevel

        try:
            decision = retrain(inputs.data.span, metadata_store_of(config),
                               lambda: _execute(config, inputs, log_path, started))
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT
        return decision.run_result if decision.started else _nothing_new(decision)


def _execute(config: PipelineConfig, inputs: RunInputs, log_path: pathlib.Path,
             started: float) -> int:
    """Runs the DAG, then writes the run report and sends the outcome's notification."""
    # pylint: disable=import-outside-toplevel
    from components.data_gate import DataGateError
    from components.tokenizer_parity import TokenizerParityError
    from pipeline.data_check import input_data_error_in
    from pipeline.local_runner import run_local
    from pipeline.metadata import metadata_store_of, pipeline_runs

    earlier_runs = {run.name for run in pipeline_runs(metadata_store_of(config))}
    error_text = ""
    try:
        outcome = run_local(config, inputs)
    except Exception as error:  # pylint: disable=broad-except
        logging.exception("run failed")
        bad_row = input_data_error_in(error)
        error_text = bad_row or str(error)
        stopped_by_gate = isinstance(error, (DataGateError, TokenizerParityError))
        print(f"error: {'' if stopped_by_gate or bad_row else 'the run failed: '}{error_text}\n"
              f"(full traceback in {log_path})", file=sys.stderr)
        # A bad row found by ExampleGen (an input too large for the pre-flight to read whole) is
        # bad input, as the pre-flight would have said.
        result = EXIT_DATA_REJECTED if stopped_by_gate else EXIT_BAD_INPUT if bad_row else 1
        event = "failure"
    else:
        minutes = (time.monotonic() - started) / 60
        accuracy = "n/a" if outcome.accuracy is None else f"{outcome.accuracy:.4f}"
        print(f"run finished in {minutes:.1f} min; eval accuracy {accuracy}; "
              f"{'blessed' if outcome.blessed else 'NOT blessed'}")
        if outcome.pushed_model_dir:
            print(f"pushed model: {outcome.pushed_model_dir}")
            print(f"TFLite: {', '.join(outcome.tflite_shipped)} in "
                  f"{outcome.pushed_model_dir}/tflite" if outcome.tflite_shipped else
                  f"no TFLite export: {outcome.tflite_reason}" if outcome.tflite_reason else
                  "TFLite: no variant kept the accuracy (the report says why)")
            result, event = 0, "success"
        else:
            print("nothing pushed: the model did not pass the Evaluator's thresholds "
                  f"(see the log {log_path})")
            result, event = EXIT_NOT_BLESSED, "not_blessed"
    new_runs = [run.name for run in pipeline_runs(metadata_store_of(config))
                if run.name not in earlier_runs]
    _report_and_notify(config, new_runs[-1] if new_runs else None, event, error_text, log_path)
    return result


def _report_and_notify(config: PipelineConfig, run_id: Optional[str], event: str,
                       error_text: str, log_path: pathlib.Path) -> None:
    """Writes the HTML report of run `run_id` (None: the run failed before TFX recorded one)
    and sends `event` with its outcome."""
    # pylint: disable=import-outside-toplevel
    from pipeline.evaluation import ACCURACY_METRIC, OVERALL_SLICE
    from reporting.html_report import write_run_report

    details = {"pipeline": config.pipeline_name, "log": str(log_path)}
    summary = f"textclf {config.pipeline_name}: " + {
        "success": "a new model serves", "not_blessed": "the model was not blessed",
        "failure": "the run failed"}[event]
    facts = None
    if run_id is None:
        logging.warning("the run failed before ML Metadata recorded it: there is no report")
    else:
        try:
            facts, report_path = write_run_report(config, run_id, error=error_text, fresh=True)
        except Exception:  # pylint: disable=broad-except
            # The run's own result stands; the log says why the report is missing.
            logging.exception("the run report could not be written")
    if facts is not None:
        print(f"report: {report_path}")
        summary = f"textclf {config.pipeline_name}: {facts.outcome}"
        accuracy = facts.slices.get(OVERALL_SLICE, {}).get("candidate", {}).get(ACCURACY_METRIC)
        details.update({"run": facts.run_id, "outcome": facts.outcome,
                        "eval accuracy": "n/a" if accuracy is None else f"{accuracy:.4f}",
                        "report": str(report_path)})
    if error_text:
        details["error"] = error_text[:1500]
    notify(config.notifications, event, summary, details)


def _nothing_new(decision) -> int:
    print(f"nothing to do: the newest span {decision.newest_span} is not newer than the last "
          f"trained span {decision.last_trained_span}")
    return 0


def _kubeflow_command(config: PipelineConfig, args: argparse.Namespace) -> int:
    """compile, submit, schedule and `retrain --kubeflow`: one message per failure, no traceback."""
    # pylint: disable=import-outside-toplevel
    from kubeflow.client import KubeflowApiError
    from kubeflow.compiler import KubeflowConfigError
    from kubeflow.schedule import CronError
    from pipeline.checkpoint import CheckpointError
    from pipeline.data_check import InputDataError

    try:
        return _KUBEFLOW_ACTIONS[args.command](config, args)
    except (KubeflowConfigError, CronError, InputDataError, CheckpointError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KubeflowApiError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_KUBEFLOW_API


def _compile(config: PipelineConfig, args: argparse.Namespace) -> int:
    from kubeflow.compiler import compile_pipeline  # pylint: disable=import-outside-toplevel

    print(f"pipeline spec: {compile_pipeline(config, args.output)}")
    return 0


def _package(config: PipelineConfig, args: argparse.Namespace) -> str:
    """The spec to submit: `--package`, or a fresh compile."""
    package = getattr(args, "package", None)
    if package:
        if not pathlib.Path(package).is_file():
            raise ValueError(f"--package {package} does not exist: run `textclf compile` first")
        return package
    from kubeflow.compiler import compile_pipeline  # pylint: disable=import-outside-toplevel

    return compile_pipeline(config)


def _parameters(config: PipelineConfig, args: argparse.Namespace) -> dict:
    """Runtime parameters given on the command line; the spec's defaults cover the rest."""
    # pylint: disable=import-outside-toplevel
    from kubeflow.compiler import DATA_PATH_PARAMETER, TRAIN_ARGS_PARAMETER, train_args

    parameters = {}
    if args.data_path:
        parameters[DATA_PATH_PARAMETER] = config.kubeflow.data_path
    if args.train_steps:
        parameters[TRAIN_ARGS_PARAMETER] = train_args(config.training.train_steps)
    return parameters


def _submit(config: PipelineConfig, args: argparse.Namespace) -> int:
    from kubeflow.client import KubeflowClient  # pylint: disable=import-outside-toplevel

    client = KubeflowClient(config.kubeflow)  # reach the endpoint before compiling
    run_name = getattr(args, "run_name", None) or time.strftime(
        f"{config.pipeline_name} %Y-%m-%d %H-%M-%S")
    run_id = client.submit_run(_package(config, args), run_name, _parameters(config, args))
    print(f"submitted run {run_id} ({run_name})")
    return 0


def _schedule(config: PipelineConfig, args: argparse.Namespace) -> int:
    from kubeflow.client import KubeflowClient  # pylint: disable=import-outside-toplevel
    from kubeflow.schedule import kfp_cron  # pylint: disable=import-outside-toplevel

    cron = kfp_cron(args.cron) if args.action in ("create", "update") else ""
    client = KubeflowClient(config.kubeflow)
    if args.action == "list":
        for schedule in client.list_schedules():
            state = "enabled" if schedule.enabled else "disabled"
            print(f"{schedule.name}\t{schedule.cron}\t{state}\t{schedule.recurring_run_id}")
        return 0
    if args.action == "delete":
        deleted = client.delete_schedule(args.name)
        print(f"deleted {deleted} recurring run(s) named {args.name!r}")
        return 0 if deleted else EXIT_BAD_INPUT
    schedule = client.apply_schedule(args.name, cron, _package(config, args),
                                     _parameters(config, args),
                                     must_exist=args.action == "update")
    print(f"recurring run {schedule.name!r} ({schedule.recurring_run_id}) runs at {schedule.cron!r}")
    return 0


def _retrain_on_kubeflow(config: PipelineConfig, args: argparse.Namespace) -> int:
    # pylint: disable=import-outside-toplevel
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    from kubeflow.compiler import kubeflow_config
    from pipeline import spans
    from pipeline.data_check import declared_data
    from pipeline.retrain import retrain

    if not config.kubeflow.metadata_host:
        raise ValueError("kubeflow.metadata_host is empty: retrain needs the cluster's ML "
                         "Metadata gRPC service (kubectl port-forward svc/metadata-grpc-service "
                         "8080, then --set kubeflow.metadata_host=127.0.0.1)")
    cluster_data = declared_data(kubeflow_config(config).data)
    newest = spans.latest_span(cluster_data.input_base, cluster_data.split_patterns.values())
    store = metadata_store.MetadataStore(metadata_store_pb2.MetadataStoreClientConfig(
        host=config.kubeflow.metadata_host, port=config.kubeflow.metadata_port))
    decision = retrain(newest, store, lambda: _submit(config, args))
    return decision.run_result if decision.started else _nothing_new(decision)


def _report(config: PipelineConfig, args: argparse.Namespace) -> int:
    from reporting.html_report import write_run_report  # pylint: disable=import-outside-toplevel

    try:
        facts, path = write_run_report(config, args.run, path=args.output)
    except LookupError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"run {facts.run_id}: {facts.outcome}\nreport: {path}")
    return 0


def _export_schema(config: PipelineConfig, args: argparse.Namespace) -> int:
    from pipeline.schema import SchemaFileError, export_schema  # pylint: disable=import-outside-toplevel

    try:
        path = export_schema(config, args.to)
    except SchemaFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"wrote {path}: review it, commit it, and run with --set data.schema_file={path}")
    return 0


def _serving_command(config: PipelineConfig, args: argparse.Namespace) -> int:
    """serve, models and rollout, on the local store or (--kubeflow) the one a cluster's runs
    push to."""
    try:
        store_root = config.cluster_serving_dir if args.kubeflow else config.serving_dir
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.command == "serve":
        return serving_commands.serve(config, store_root)
    if args.command == "rollout":
        return rollout_commands.run(config, store_root, args)
    return serving_commands.models(config, store_root, args)


_KUBEFLOW_ACTIONS = {"compile": _compile, "submit": _submit, "schedule": _schedule,
                     "retrain": _retrain_on_kubeflow}


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "models" and args.action == "keygen":
        return serving_commands.keygen(args.private_key, args.public_key)
    try:
        config = load_config(args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.command in ("serve", "models", "rollout"):
        return _serving_command(config, args)
    if args.command == "audit":
        return serving_commands.audit_verify(args.log or config.serving.audit.path)
    if args.command == "schema":
        return _export_schema(config, args)
    if args.command == "report":
        return _report(config, args)
    if args.command in _KUBEFLOW_COMMANDS or getattr(args, "kubeflow", False):
        return _kubeflow_command(config, args)
    return _run(config, retrain_only=args.command == "retrain")


def console_main() -> None:
    """Entry point of the `textclf` script.

    Exits without interpreter teardown once output is flushed: TensorFlow's function objects
    otherwise print spurious "Exception ignored in AtomicFunction.__del__" tracebacks at exit.
    """
    exit_code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(exit_code)  # pylint: disable=protected-access


if __name__ == "__main__":
    console_main()
