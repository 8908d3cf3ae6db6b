"""Transform and Trainer code that runs inside the TFX components."""

import os

# Hugging Face's TF models need Keras 2 (tf-keras); this must be set before TensorFlow loads.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
