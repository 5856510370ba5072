"""A Hydra sweeper that searches hyperparameters with current Optuna (ask-and-tell).

The official hydra-optuna-sweeper pins optuna<3. This plugin covers what our searches need —
Hydra's sweep syntax for the search space, any Optuna sampler, persistent storage so that an
interrupted search continues — on the Optuna API of today. Hydra finds it through the
`hydra_plugins` namespace package; select it with `hydra/sweeper=leo_optuna`.
"""
