"""Dataset reading, validation, preparation (splits and HDF5 shards) and data tests; no UI, no TensorFlow."""
