"""The training loop behind ``Model.fit/evaluate/predict``: batches, steps, clipping, the
NaN guard, truncated BPTT, checkpoints and data-parallel training."""
