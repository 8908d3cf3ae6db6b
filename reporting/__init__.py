"""The run report: facts read back from ML Metadata, rendered as one static HTML page."""
