"""The baseline arm of trainer_throughput.py: the Hugging Face PyTorch `Trainer` on the CPU.

Runs in the separate Python 3.11 venv `.venv-torch` (`make bench-torch-venv`), never in the
project's venv. Fine-tunes the same checkpoint on the same TSV rows for the same steps and batch
and prints one JSON line with the Trainer's own throughput figure.

Usage: .venv-torch/bin/python benchmarks/torch_trainer.py --checkpoint DIR --train-tsv FILE
           --steps 300 --batch-size 32 --max-length 64 --padding max_length|dynamic
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time

import torch
from transformers import (AutoModelForSequenceClassification, AutoTokenizer,
                          DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments)


class SteadyThroughput(TrainerCallback):
    """Steps per second after the first `skip_steps`, measured as modules.callbacks does."""

    def __init__(self, skip_steps: int):
        self.skip_steps, self.steps, self.started, self.ended = skip_steps, 0, None, None

    def on_step_end(self, args, state, control, **kwargs):
        self.steps, self.ended = state.global_step, time.monotonic()
        if self.steps == self.skip_steps:
            self.started = self.ended

    def steps_per_second(self) -> float:
        return (self.steps - self.skip_steps) / (self.ended - self.started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--train-tsv", required=True)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--skip-steps", type=int, default=50,
                        help="steps left out of the steady throughput, as in the TF arms")
    parser.add_argument("--padding", choices=["max_length", "dynamic"], default="max_length",
                        help="max_length: run_glue.py's default; dynamic: pad each batch to its "
                             "longest row and group rows by length")
    args = parser.parse_args()

    with open(args.train_tsv, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    tokenizer = AutoTokenizer.from_pretrained(args.checkpoint)
    padding = "max_length" if args.padding == "max_length" else False
    encoded = tokenizer([row["sentence"] for row in rows], truncation=True,
                        max_length=args.max_length, padding=padding)
    dataset = [{"input_ids": ids, "attention_mask": mask, "token_type_ids": types,
                "labels": int(row["label"])}
               for ids, mask, types, row in zip(encoded["input_ids"], encoded["attention_mask"],
                                                encoded["token_type_ids"], rows)]
    model = AutoModelForSequenceClassification.from_pretrained(args.checkpoint, num_labels=2)
    with tempfile.TemporaryDirectory() as output_dir:
        training_args = TrainingArguments(
            output_dir=output_dir, max_steps=args.steps, per_device_train_batch_size=args.batch_size,
            learning_rate=args.learning_rate, warmup_ratio=0.1, weight_decay=0.01,
            max_grad_norm=1.0, lr_scheduler_type="linear", logging_steps=100, save_strategy="no",
            report_to=[], use_cpu=True, seed=42, dataloader_num_workers=0,
            group_by_length=args.padding == "dynamic")
        steady = SteadyThroughput(args.skip_steps)
        trainer = Trainer(model=model, args=training_args, train_dataset=dataset,
                          data_collator=DataCollatorWithPadding(tokenizer), callbacks=[steady])
        started = time.monotonic()
        metrics = trainer.train().metrics
        seconds = time.monotonic() - started
    print(json.dumps({
        "framework": f"torch {torch.__version__}, transformers Trainer", "padding": args.padding,
        "threads": torch.get_num_threads(), "steps": args.steps, "batch_size": args.batch_size,
        "train_seconds": round(seconds, 1),
        "examples_per_second": round(steady.steps_per_second() * args.batch_size, 2),
        "examples_per_second_with_startup": round(args.steps * args.batch_size / seconds, 2),
        "trainer_samples_per_second": metrics["train_samples_per_second"],
        "final_loss": metrics["train_loss"]}))


if __name__ == "__main__":
    main()
