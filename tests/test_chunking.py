"""Chunking never changes the numbers: network i depends only on i, and every chunk of a run has one
shape (pdlt.ensembles.even_chunk), so a short last chunk costs no extra compilation."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pdlt

KEY = jax.random.key(11)
X = jnp.array([[1.0, 0.3, -0.2], [0.1, -0.7, 0.4]])


def _runs():
    G0 = jnp.array([[1.0, 0.4], [0.4, 1.0]])
    x, dx, _, _ = pdlt.topics.circle_curve(2, 4)
    return {
        "attention_gram_chain": lambda c: pdlt.topics.attention_gram_chain(KEY, G0, n=6, n_k=3, L=2, lam=0.8, gamma=0.6,
                                                                    n_nets=11, chunk=c, progress=False),
        "length_distortion_ensemble": lambda c: pdlt.topics.length_distortion_ensemble(KEY, x, dx, widths=(5, 5, 2),
                                                                                n_nets=11, chunk=c, progress=False),
        "resnet_ensemble": lambda c: pdlt.theory.resnet_ensemble(KEY, X, n=5, L=3, n_nets=11, chunk=c, progress=False, C_W=1.0),
        "weights_ensemble_metrics": lambda c: pdlt.ensembles.weights_ensemble_metrics(
            KEY, X, widths=[5, 5], sampler=pdlt.ensembles.weight_sampler("orthogonal"), C_W=2.0, activation="relu",
            n_nets=11, chunk=c, progress=False),
        "dntk_moment_mean": lambda c: np.array(pdlt.learning.dntk_moment_mean(KEY, X[:1], n=5, L=3, C_b=0.0, C_W=2.0,
                                                                     n_nets=11, chunk=c)),
        "ntk_relative_variance": lambda c: np.array(pdlt.learning.ntk_relative_variance(KEY, X[:1], n=5, L=3, C_b=0.0,
                                                                               C_W=2.0, n_nets=11, chunk=c)),
    }


@pytest.mark.parametrize("name", sorted(_runs()))
def test_chunk_size_does_not_change_the_numbers(name):
    run = _runs()[name]
    whole, parts = np.asarray(run(11)), np.asarray(run(4))   # 11 networks as 3 chunks of 4 (one padded)
    assert whole.shape == parts.shape
    np.testing.assert_allclose(parts, whole, rtol=1e-12, atol=1e-14)
