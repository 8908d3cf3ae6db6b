"""Installs the pipeline's packages and the `textclf` command (dependencies: requirements.lock)."""

from setuptools import find_packages, setup

setup(
    name="tfx-text-classifier",
    version="0.1.0",
    description="TFX pipeline that trains Hugging Face transformer text classifiers and pushes them",
    python_requires=">=3.10,<3.11",
    packages=find_packages(include=["pipeline", "pipeline.*", "components", "components.*",
                                    "modules", "modules.*", "kubeflow", "kubeflow.*", "serving", "serving.*",
                                    "reporting", "reporting.*", "lite", "lite.*"]),
    entry_points={"console_scripts": ["textclf = pipeline.cli:console_main",
                                      "textclf-lite = lite.predictor:main"]},
)
