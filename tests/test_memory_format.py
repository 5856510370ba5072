"""model.channels_last puts the backbone itself in channels-last, and changes no result."""

from __future__ import annotations

import torch
from helpers import random_episode, tiny_module


def _conv_layers(module):
    return [m for m in module.net.backbone.modules() if isinstance(m, torch.nn.Conv2d)]


def test_channels_last_backbone_runs_every_conv_in_channels_last():
    # A 1-channel image is both NCHW- and NHWC-contiguous, so the input alone cannot select
    # channels-last: the weights must, or every layer quietly runs NCHW.
    module = tiny_module(channels_last=True)
    seen = []
    hooks = [
        conv.register_forward_hook(
            lambda m, i, out: seen.append(out.is_contiguous(memory_format=torch.channels_last))
        )
        for conv in _conv_layers(module)
    ]
    module.eval()
    with torch.no_grad():
        module.net.features(random_episode().query_x)
    for hook in hooks:
        hook.remove()
    assert seen and all(seen)
    assert all(
        c.weight.is_contiguous(memory_format=torch.channels_last) for c in _conv_layers(module)
    )


def test_channels_last_gives_the_same_logits_and_loads_the_same_weights():
    plain, channels_last = tiny_module(), tiny_module(channels_last=True)
    channels_last.load_state_dict(plain.state_dict())
    assert all(
        c.weight.is_contiguous(memory_format=torch.channels_last)
        for c in _conv_layers(channels_last)
    )
    episode = random_episode()
    plain.eval(), channels_last.eval()
    with torch.enable_grad():  # evaluation: nothing sampled, the inner loops still run
        a = plain(episode).query_logits
        b = channels_last(episode).query_logits
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
