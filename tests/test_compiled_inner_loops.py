"""model.compile_inner_loops hands the inner loops' steps to torch.compile: the same step,
compiled (fp32, the same random numbers)."""

from __future__ import annotations

import pytest
import torch
from test_closed_form_inner_loop import (
    closed_form_logits,
    feature_episode,
    feature_module,
    logits_and_grads,
)

pytestmark = pytest.mark.slow  # Inductor compiles C++ kernels: seconds to a minute


def test_compiled_inner_loops_give_the_eager_logits_and_meta_gradients():
    eager = feature_module(dropout=0.3).train()
    compiled = feature_module(dropout=0.3, compile_inner_loops="default").train()
    episode = feature_episode()
    eager_logits, eager_grads = logits_and_grads(eager, episode, closed_form_logits)
    compiled_logits, compiled_grads = logits_and_grads(compiled, episode, closed_form_logits)
    torch.testing.assert_close(compiled_logits, eager_logits, rtol=1e-5, atol=1e-5)
    assert compiled_grads.keys() == eager_grads.keys()
    for name, grad in eager_grads.items():
        torch.testing.assert_close(compiled_grads[name], grad, rtol=1e-4, atol=1e-6)


def test_a_compiled_model_evaluates_as_the_eager_one():
    eager = feature_module().eval()
    compiled = feature_module(compile_inner_loops="default").eval()
    episode = feature_episode()
    torch.testing.assert_close(
        closed_form_logits(compiled, episode), closed_form_logits(eager, episode)
    )


def test_an_unknown_compile_mode_is_refused_naming_the_key():
    with pytest.raises(ValueError, match="model.compile_inner_loops='fast'"):
        feature_module(compile_inner_loops="fast")
