"""Builds and runs the TFX text-classification pipeline."""

import os
import warnings

# Hugging Face's TF models need Keras 2 (tf-keras); this must be set before TensorFlow loads.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# TensorFlow's C++ start-up chatter (CUDA plugins on a CPU machine) hides the pipeline's own log.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Google client libraries (pulled in by TFX) warn about Python 3.10 on import; TFX 1.16 needs 3.10.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")
