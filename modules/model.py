"""The Trainer's `run_fn`: one training job, in this process, on local worker processes, or as a
TFJob on the Kubernetes cluster the pipeline runs on."""

from __future__ import annotations

import os

from tfx import v1 as tfx

from modules.local_cluster import run_local_cluster
from modules.tfjob import TFJobSettings, run_tfjob
from modules.training import TrainingJob, train
from pipeline.config import TrainingConfig, section_from_dict


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """Trains for `fn_args.train_steps` steps and exports to `fn_args.serving_model_dir`.

    With `training.strategy=multi_worker` and `num_workers` > 1 (and no TF_CONFIG), the job runs
    on that many workers: a TFJob when the pipeline was compiled for Kubeflow (`tfjob` in the
    custom config), else local worker processes. With TF_CONFIG set it trains in place.
    """
    training = section_from_dict(TrainingConfig, fn_args.custom_config["training"])
    job = TrainingJob(
        train_files=list(fn_args.train_files), eval_files=list(fn_args.eval_files),
        transform_output=fn_args.transform_output, serving_model_dir=fn_args.serving_model_dir,
        model_run_dir=fn_args.model_run_dir,
        train_steps=fn_args.train_steps or training.train_steps,
        custom_config=dict(fn_args.custom_config), base_model=fn_args.base_model)
    if training.strategy == "multi_worker" and training.num_workers > 1 \
            and "TF_CONFIG" not in os.environ:
        if fn_args.custom_config.get("tfjob"):
            run_tfjob(job, training.num_workers, TFJobSettings(**fn_args.custom_config["tfjob"]))
        else:
            # Logs beside the job's backups: they survive a failed run, as the backups do.
            run_local_cluster(job.to_json(), f"{job.backup_dir}/workers", training.num_workers,
                              training.worker_base_port)
    else:
        train(job)
