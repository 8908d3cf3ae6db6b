"""The Trainer's `run_fn`: one training job, in this process, on local worker processes, or as a
TFJob on the Kubernetes cluster the pipeline runs on."""

from __future__ import annotations

import dataclasses
import os

from absl import logging
from tfx import v1 as tfx

from modules.datasets import count_records
from modules.local_cluster import run_local_cluster
from modules.tfjob import TFJobSettings, run_tfjob
from modules.training import TrainingJob, train
from pipeline.config import TrainingConfig, section_from_dict
from pipeline.training_plan import TrainingPlan


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """Trains for `fn_args.train_steps` steps (or, left unset when fine-tuning, `epochs` passes
    over the training rows, counted here) and exports to `fn_args.serving_model_dir`.

    With `training.strategy=multi_worker` and `num_workers` > 1 (and no TF_CONFIG), the job runs
    on that many workers: a TFJob when the pipeline was compiled for Kubeflow (`tfjob` in the
    custom config), else local worker processes. With TF_CONFIG set it trains in place.
    """
    training = section_from_dict(TrainingConfig, fn_args.custom_config["training"])
    plan = TrainingPlan(**fn_args.custom_config["plan"])
    if fn_args.train_steps and fn_args.train_steps != plan.train_steps:
        plan = dataclasses.replace(plan, train_steps=fn_args.train_steps,
                                   train_steps_rule="set: the train_args runtime parameter")
    if not plan.train_steps:
        plan = plan.over_rows(count_records(list(fn_args.train_files)), training.epochs,
                              training.batch_size)
    logging.info("Trainer: %s", plan.describe())
    job = TrainingJob(
        train_files=list(fn_args.train_files), eval_files=list(fn_args.eval_files),
        transform_output=fn_args.transform_output, serving_model_dir=fn_args.serving_model_dir,
        model_run_dir=fn_args.model_run_dir, train_steps=plan.train_steps,
        custom_config={**fn_args.custom_config, "plan": dataclasses.asdict(plan)},
        base_model=fn_args.base_model)
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
