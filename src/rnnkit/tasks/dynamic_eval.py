r"""Dynamic evaluation (Krause et al. 2018): a language model that keeps learning from the text it scores.

An adaptive coder such as PPMd updates its statistics on every symbol it has coded; a static network does
not, and so loses to it on text whose names and turns of phrase recur (a play). Dynamic evaluation lets the
network adapt in the same online way: each window is **scored first**, with the weights as they are, and
only then used for one gradient step, so no token is ever predicted by weights that have seen it:

.. math::

    \ell_t = -\tfrac{1}{|w_t|} \sum_{i \in w_t} \log p_{\theta_t}(x_i \mid x_{<i}), \qquad
    \theta_{t+1} = \theta_t - \eta \, \nabla_\theta \ell_t + \lambda \, (\theta_0 - \theta_t)

The decay :math:`\lambda` pulls the weights back towards the trained ones :math:`\theta_0`. Dropout is off.
The model's weights are restored afterwards: evaluation never changes a model. Reported figures say
"dynamic" beside them; the static ones (:meth:`LanguageModel.evaluate`) stay the headline.
"""

from __future__ import annotations

import math

import torch

from rnnkit.errors import RnnkitError
from rnnkit.tasks.lm import stream_metrics
from rnnkit.tbptt import detach_state


def dynamic_evaluate(model, data, *, learning_rate: float, decay: float = 0.0) -> dict[str, float]:
    """Per-token loss of ``data`` (a stream of ``(x, y)`` windows) while adapting ``model`` to it."""
    if not 0 < learning_rate < math.inf or not 0 <= decay < 1:
        raise RnnkitError(f"need learning_rate > 0 and 0 <= decay < 1; got {learning_rate} and {decay}.")
    params = [p for p in model.parameters() if p.requires_grad]
    trained = [p.detach().clone() for p in params]
    device = params[0].device
    model.eval()
    total, count, state = 0.0, 0, None
    try:
        for x, y in data.batches(0):
            output = model.loss((x.to(device), y.to(device)), detach_state(state))
            total += output.loss.item() * output.units  # scored before the step below sees these tokens
            count += output.units
            state = output.state
            grads = torch.autograd.grad(output.loss, params)
            with torch.no_grad():
                for param, grad, start in zip(params, grads, trained, strict=True):
                    # θ + λ(θ_0 - θ), then - η∇: the decay pulls θ_t back, not the step just taken
                    param.lerp_(start, decay).add_(grad, alpha=-learning_rate)
    finally:
        with torch.no_grad():
            for param, start in zip(params, trained, strict=True):
                param.copy_(start)
    return stream_metrics(total, count)
