"""The typed configuration: defaults, YAML, overrides and the errors a typo gets."""

import pytest

from pipeline.config import ConfigError, PipelineConfig


def test_defaults_point_at_the_embedded_dataset():
    config = PipelineConfig()
    assert config.data.path == "data/reviews"
    assert config.data.slice_columns == ["source", "domain"]
    assert config.enable_cache is True
    assert config.serving_dir.endswith("outputs/serving_models")


def test_yaml_file_then_overrides_in_that_order(tmp_path):
    config_file = tmp_path / "run.yaml"
    config_file.write_text("data:\n  delimiter: \"\\t\"\n  text_column: sentence\n"
                           "training:\n  train_steps: 50\n  learning_rate: 1\n")
    config = PipelineConfig.load(str(config_file), ["training.train_steps=70",
                                                    "data.slice_columns=a, b",
                                                    "enable_cache=false"])
    assert config.data.delimiter == "\t"
    assert config.data.text_column == "sentence"
    assert config.training.learning_rate == 1.0
    assert config.training.train_steps == 70
    assert config.data.slice_columns == ["a", "b"]
    assert config.enable_cache is False


def test_round_trip_through_a_dict():
    config = PipelineConfig.load(None, ["model.max_seq_length=32", "data.label_values=no,yes"])
    assert PipelineConfig.from_dict(config.to_dict()) == config


def test_tab_is_typeable_on_the_command_line():
    assert PipelineConfig.load(None, ["data.delimiter=tab"]).data.delimiter == "\t"
    assert PipelineConfig.load(None, ["data.delimiter=\\t"]).data.delimiter == "\t"


@pytest.mark.parametrize("override, message", [
    ("training.trian_steps=5", "unknown config key 'training.trian_steps'"),
    ("trainig.train_steps=5", "unknown config section 'trainig'"),
    ("training.train_steps=many", "must be of type int"),
    ("enable_cache=maybe", "must be true or false"),
    ("data.delimiter=;;", "one character"),
    ("model.num_attention_heads=3", "multiple of model.num_attention_heads"),
    ("evaluation.min_accuracy=1.5", "min_accuracy must be in [0, 1]"),
    ("data.train_pattern=train.tsv", "set both data.train_pattern and data.eval_pattern"),
    ("no_equals_sign", "section.key=value"),
    ("data.text_pair_column=label", "text_pair_column and data.label_column must differ"),
    ("model.min_tokenizer_parity=99.5", "min_tokenizer_parity must be in [0, 1]"),
    ("model.pooling=max", "model.pooling must be one of auto, cls, mean, got 'max'"),
    ("training.warmup_ratio=1", "training.warmup_ratio must be in"),
    ("training.strategy=horovod", "training.strategy must be one of auto, one_device, mirrored, "
                                  "multi_worker, tpu, got 'horovod'"),
    ("training.precision=fp16", "training.precision must be one of fp32, mixed_float16, "
                                "mixed_bfloat16, got 'fp16'"),
    ("training.num_workers=0", "training.num_workers must be >= 1"),
    ("training.num_workers=2", "num_workers > 1 needs training.strategy=multi_worker"),
    ("training.gradient_accumulation_steps=5", "must be >= 1 and divide training.batch_size"),
    ("training.keep_checkpoints=0", "training.keep_checkpoints must be >= 1"),
    ("training.worker_base_port=70000", "worker_base_port must be a port number"),
    ("serving.rollout.steps=5,1,100", "serving.rollout.steps must rise step by step"),
    ("serving.rollout.steps=50,150", "serving.rollout.steps must be percentages in"),
    ("serving.rollout.steps=5,50", "serving.rollout.steps must end at 100"),
    ("serving.rollout.steps=five", "serving.rollout.steps must be of type float"),
    ("serving.rollout.max_error_rate_increase=-0.1",
     "serving.rollout.max_error_rate_increase must be >= 0"),
    ("serving.rollout.max_p99_ratio=0.5", "serving.rollout.max_p99_ratio must be >= 1"),
    ("serving.rollout.mode=bluegreen", "serving.rollout.mode must be one of immediate, canary, "
                                       "shadow, got 'bluegreen'"),
    ("serving.rollout.leader_lease_seconds=1", "must exceed twice serving.poll_seconds"),
    ("data.encoding=latin-9000", "data.encoding 'latin-9000' is not an encoding Python knows"),
    ("data.encoding=base64", "data.encoding 'base64' is a codec, but not one from bytes to text"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        PipelineConfig.load(None, [override])


def test_unknown_and_mistyped_yaml_keys(tmp_path):
    config_file = tmp_path / "run.yaml"
    config_file.write_text("training:\n  epochs: three\n")
    with pytest.raises(ConfigError, match="training.epochs must be of type int"):
        PipelineConfig.load(str(config_file))
    config_file.write_text("model:\n  layers: 4\n")
    with pytest.raises(ConfigError, match="unknown config key.*model.layers"):
        PipelineConfig.load(str(config_file))
