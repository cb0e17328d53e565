"""Prediction: stream a text file through a classifier into an HDF5 table, resumably."""
