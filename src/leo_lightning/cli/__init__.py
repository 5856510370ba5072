"""Entry points behind scripts/: compose the config, build objects, run, write results."""
