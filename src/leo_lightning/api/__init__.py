"""The Python API: `train` and `evaluate` as the commands run them, and `LEO`, a model's
adaptation steps by name."""
