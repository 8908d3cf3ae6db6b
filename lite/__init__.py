"""The TFLite export: one `.tflite` per variant that takes raw strings, and a predictor for it.

`lite.predictor` runs on a device with a light TFLite runtime and must never import TensorFlow;
the other modules (building, converting and measuring the models) run inside the pipeline.
Nothing is imported here, so `import lite.predictor` stays light.
"""
