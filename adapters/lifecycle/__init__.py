"""The adapter lifecycle floor: artifacts on disk, the version registry, publication of serving
sets."""
