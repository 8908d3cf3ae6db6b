"""Per-component wall times of a pipeline's newest run, read from MLMD execution timestamps."""

from pipeline.config import PipelineConfig
from pipeline.local_runner import newest_executions


def component_seconds(config: PipelineConfig) -> dict[str, float]:
    """Wall seconds of each component's newest execution."""
    return {component: round((execution.last_update_time_since_epoch
                              - execution.create_time_since_epoch) / 1000, 1)
            for component, execution in newest_executions(config).items()}
