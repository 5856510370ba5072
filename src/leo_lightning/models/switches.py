"""LEO's optional switches (the design document's future improvements) and the values that
leave the paper's LEO as it is: every switch is at that value by default. A strategy that has no
use for a switch refuses it when it is set (strategies/spec.py); the model's schema takes its
defaults from here."""

from __future__ import annotations

SWITCHES = {
    "relation": "pairwise",  # models/relation_rounds.py: RELATIONS
    "relation_rounds": 1,
    "per_step_rates": False,  # models/leo.py
    "decoder": "linear",  # models/leo.py: DECODERS
    "decoder_experts": 4,  # E of decoder=mixture; not a switch of its own, read with it
    "latent_step_bound": None,  # models/leo.py: no bound on a latent step (the paper)
}
