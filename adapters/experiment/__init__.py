"""The LSAT paper's incremental-learning protocol and its comparison of update strategies."""
