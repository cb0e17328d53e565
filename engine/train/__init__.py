"""Fine-tuning: config and schedules (importable without TensorFlow), and the TF training loop and job."""
