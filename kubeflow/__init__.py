"""Kubeflow Pipelines: compiling the DAG, and submitting and scheduling its runs."""
