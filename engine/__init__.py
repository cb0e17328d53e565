"""ftc's engine: the per-session process that hosts data, training and prediction jobs.

Importing this package is cheap: nothing here pulls in TensorFlow or transformers. The
modules that need them (training, prediction, model loading) import them where used.
"""
