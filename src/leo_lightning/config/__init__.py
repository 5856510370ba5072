"""Schemas of the Hydra configs, composing them, and the checks a config passes before a run."""
