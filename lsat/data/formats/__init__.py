"""Readers for each supported on-disk dataset format (see ``load_dataset``)."""
