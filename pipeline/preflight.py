"""Checks that a run can start, before any component runs and before TFX is even imported."""

from __future__ import annotations

import dataclasses
from typing import Optional

from modules.local_cluster import LocalClusterError, reserve_ports
from pipeline.checkpoint import Checkpoint, CheckpointError, resolve_checkpoint
from pipeline.config import PipelineConfig
from pipeline.data_check import DataSummary, InputDataError, check_input_data
from pipeline.schema import SchemaFileError, check_schema_file
from serving.signing import KeyFileError, load_signing_key

# What `preflight` raises: bad input data, an unusable checkpoint or reviewed schema, no ports
# for local workers, a signing key the Pusher could not use.
PREFLIGHT_ERRORS = (InputDataError, CheckpointError, SchemaFileError, LocalClusterError,
                    KeyFileError)


@dataclasses.dataclass(frozen=True)
class RunInputs:
    """The checked input data and the resolved checkpoint (None trains from scratch)."""

    data: DataSummary
    checkpoint: Optional[Checkpoint]


def preflight(config: PipelineConfig) -> RunInputs:
    """Fails in seconds on what would otherwise fail minutes into the run."""
    data = check_input_data(config.data)
    if config.data.schema_file:
        check_schema_file(config.data)
    checkpoint = (resolve_checkpoint(config.model.pretrained, config.model.max_seq_length)
                  if config.model.pretrained else None)
    training = config.training
    if training.strategy == "multi_worker" and training.num_workers > 1:
        # Checked again when the Trainer starts the workers; this catches a busy range early.
        reserve_ports(training.num_workers, training.worker_base_port)
    # The Pusher signs last: a bad key would otherwise surface after the whole run.
    load_signing_key(config.serving.signing_key_file)
    return RunInputs(data, checkpoint)
