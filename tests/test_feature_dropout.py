"""LEO's feature dropout (models/dropout.py): nn.Dropout's behaviour from fewer random draws."""

from __future__ import annotations

import pytest
import torch

from leo_lightning.models.dropout import FeatureDropout


def test_drops_the_asked_share_and_scales_the_rest_to_keep_the_mean():
    torch.manual_seed(0)
    dropout = FeatureDropout(0.3).train()
    out = dropout(torch.ones(400_000))
    kept = out != 0
    assert kept.float().mean().item() == pytest.approx(0.7, abs=0.003)
    torch.testing.assert_close(out[kept], torch.full_like(out[kept], 1 / 0.7))


def test_draws_a_fresh_mask_for_every_use():
    torch.manual_seed(0)
    masks = FeatureDropout(0.5).train().masks((4, 1000), torch.ones(()))
    for a in range(4):
        for b in range(a + 1, 4):
            assert not torch.equal(masks[a], masks[b])


def test_the_same_seed_draws_the_same_masks():
    dropout = FeatureDropout(0.3).train()
    torch.manual_seed(3)
    first = dropout.masks((5, 7), torch.ones(()))
    torch.manual_seed(3)
    assert torch.equal(first, dropout.masks((5, 7), torch.ones(())))


@pytest.mark.parametrize(("p", "training"), [(0.3, False), (0.0, True)])
def test_leaves_the_input_alone_at_evaluation_or_without_a_rate(p, training):
    x = torch.randn(10, 3)
    state = torch.random.get_rng_state()
    out = FeatureDropout(p).train(training)(x)
    assert out is x
    assert torch.equal(torch.random.get_rng_state(), state)  # and draws nothing


def test_every_value_of_a_mask_is_drawn_independently_of_its_neighbours():
    """Four values come from one 64-bit draw: neighbours must still be independent."""
    torch.manual_seed(1)
    kept = FeatureDropout(0.5).train().masks((200_000, 4), torch.ones(())) != 0
    both = (kept[:, 0] & kept[:, 1]).float().mean().item()
    assert both == pytest.approx(0.25, abs=0.004)


def test_refuses_a_rate_outside_0_to_1():
    with pytest.raises(ValueError, match=r"model.dropout=1.0"):
        FeatureDropout(1.0)
