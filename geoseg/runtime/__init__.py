"""Run machinery shared by tiling, prediction, training and evaluation: background threads, the local
process pool, the dask client, TensorFlow's quiet import and device probes, progress bars."""
