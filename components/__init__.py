"""Custom TFX components of the project."""
