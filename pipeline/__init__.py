"""Builds and runs the TFX text-classification pipeline."""

import os

# Hugging Face's TF models need Keras 2 (tf-keras); this must be set before TensorFlow loads.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# TensorFlow's C++ start-up chatter (CUDA plugins on a CPU machine) hides the pipeline's own log.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
