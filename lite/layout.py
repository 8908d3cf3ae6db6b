"""Where the TFLite export's files go, for the code that writes them and the code that reads
them (the Pusher, the store commands, the run report) without importing TensorFlow.

An export folder (`lite.export.export_tflite`'s output, TFLiteExport's artifact):
  shipped/model-<variant>.tflite   the variants that kept the accuracy, with the report:
  shipped/tflite_report.json       the Pusher publishes this folder as the version's `tflite/`
  refused/model-<variant>.tflite   the others, kept for inspection, never published
  tflite_report.json               every variant's figures and verdict
"""

REPORT_FILE = "tflite_report.json"
SHIPPED_DIR = "shipped"
REFUSED_DIR = "refused"
# A published version's folder of shipped variants.
VERSION_DIR = "tflite"
# The first words of the line that says why a model has no TFLite export.
NO_EXPORT = "no TFLite export"


def model_file(variant: str) -> str:
    """The file name of one variant."""
    return f"model-{variant}.tflite"
