"""The reviewed schema: what `schema export` sets for review, and the pre-flight check of the file."""

import pandas as pd
import pytest
import tensorflow_data_validation as tfdv
from google.protobuf import text_format

from pipeline.config import DataConfig
from pipeline.schema import SERVING, SchemaFileError, check_schema_file, reviewable_schema

DATA = DataConfig(slice_columns=["source"])
TRAIN = pd.DataFrame({"text": ["great", "awful", "great", "fine"] * 5,
                      "label": ["pos", "neg", "pos", "pos"] * 5, "source": ["web", "app"] * 10})


def _anomalies(frame, schema, environment=None):
    return dict(tfdv.validate_statistics(tfdv.generate_statistics_from_dataframe(frame), schema,
                                         environment=environment).anomaly_info)


@pytest.fixture(scope="module")
def reviewed():
    inferred = tfdv.infer_schema(tfdv.generate_statistics_from_dataframe(TRAIN))
    # Three distinct texts: TFDV infers a value domain for the text column, which must go.
    assert tfdv.get_feature(inferred, "text").HasField("domain")
    return reviewable_schema(inferred, DATA, ["neg", "pos"])


def test_text_needs_no_domain_and_the_label_is_required_in_training_only(reviewed):
    text, label = tfdv.get_feature(reviewed, "text"), tfdv.get_feature(reviewed, "label")
    assert not text.HasField("domain") and text.presence.min_fraction == 1.0
    assert list(label.string_domain.value) == ["neg", "pos"]
    assert list(label.not_in_environment) == [SERVING]
    assert [domain.name for domain in reviewed.string_domain] == ["source"]

    new_text = pd.DataFrame({"text": ["never seen before"], "label": ["pos"], "source": ["web"]})
    assert _anomalies(new_text, reviewed) == {}
    serving = pd.DataFrame({"text": ["a request"], "source": ["web"]})
    assert _anomalies(serving, reviewed, environment=SERVING) == {}


@pytest.mark.parametrize("frame, feature, problem", [
    (pd.DataFrame({"text": ["ok"], "label": ["neutral"], "source": ["web"]}), "label",
     "Unexpected string values"),
    (pd.DataFrame({"text": ["ok", None], "label": ["pos", "neg"], "source": ["web", "web"]}),
     "text", "present in fewer examples than expected"),
    (pd.DataFrame({"text": ["ok"], "label": ["pos"], "source": ["fax"]}), "source",
     "Unexpected string values"),
])
def test_data_unlike_the_reviewed_schema_is_an_anomaly(reviewed, frame, feature, problem):
    anomalies = _anomalies(frame, reviewed)
    assert problem in anomalies[feature].description + anomalies[feature].short_description


def test_a_schema_file_must_exist_parse_and_describe_the_columns(tmp_path, reviewed):
    missing = DataConfig(slice_columns=["source"], schema_file=str(tmp_path / "none.pbtxt"))
    with pytest.raises(SchemaFileError, match="cannot be read.*textclf schema export"):
        check_schema_file(missing)
    (tmp_path / "bad.pbtxt").write_text("feature { name: ")
    with pytest.raises(SchemaFileError, match="not a TFDV schema"):
        check_schema_file(DataConfig(schema_file=str(tmp_path / "bad.pbtxt")))
    (tmp_path / "ok.pbtxt").write_text(text_format.MessageToString(reviewed))
    assert check_schema_file(DataConfig(slice_columns=["source"],
                                        schema_file=str(tmp_path / "ok.pbtxt")))
    with pytest.raises(SchemaFileError, match=r"no feature for column\(s\) \['domain'\]"):
        check_schema_file(DataConfig(slice_columns=["source", "domain"],
                                     schema_file=str(tmp_path / "ok.pbtxt")))
