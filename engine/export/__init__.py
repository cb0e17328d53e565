"""Exporting a trained model for the wider ecosystem: a Hugging Face folder (PyTorch-named
safetensors, loadable by transformers v5 and PyTorch) or a TensorFlow SavedModel, each with a model card.
"""

FORMATS = ("hf", "savedmodel")
