"""Shared fixtures: small samples of the embedded default dataset."""

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


@pytest.fixture(autouse=True, scope="session")
def _hide_pytest_argv_from_tfx():
    """TFX's Beam executors parse `sys.argv` with absl (its TODO b/174174381): pytest's `-v`
    would be read as absl's `-v <verbosity>` and swallow a Beam argument."""
    original_argv = sys.argv
    sys.argv = original_argv[:1]
    yield
    sys.argv = original_argv
