"""Run machinery shared by tiling and prediction: background threads and the dask client."""
