"""pdlt: the library behind the executable companion to *The Principles of Deep Learning Theory*.

Layers (each imports only from those above it in this list):

1. ``_activations``, ``_gaussian``: activation functions and Gaussian expectations.
2. ``_kernel``, ``_ntk`` and the other recursions: infinite- and finite-width theory.
3. ``_mlp``, ``_ensembles``: Monte Carlo networks at initialization (and training).
4. learning modules (Bayesian inference, kernel learning, finite-width predictions).

Beside the mathematics: ``_checks``/``_params`` (validation), ``_stats`` (estimators with
standard errors), ``_ledger`` (the results ledger), ``book`` (chapter support), ``run`` (Papermill
runner). The public API is what this file re-exports.
"""
from ._activations import ACTIVATIONS as ACTIVATIONS
from ._activations import Activation as Activation
from ._activations import activation_names as activation_names
from ._activations import get_activation as get_activation
from ._activations import leaky_relu as leaky_relu
from ._checks import PDLTValueError as PDLTValueError
from ._ensembles import ensemble_metrics as ensemble_metrics
from ._ensembles import sample_network_metrics as sample_network_metrics
from ._gaussian import derivative_kernel_map as derivative_kernel_map
from ._gaussian import gaussian_expectation as gaussian_expectation
from ._gaussian import gaussian_expectation2 as gaussian_expectation2
from ._gaussian import kernel_map as kernel_map
from ._gaussian import std_normal_nodes as std_normal_nodes
from ._gaussian import wick_expectation as wick_expectation
from ._kernel import input_kernel as input_kernel
from ._kernel import kernel_recursion as kernel_recursion
from ._ledger import Ledger as Ledger
from ._ledger import within as within
from ._mlp import init_mlp as init_mlp
from ._mlp import mlp_apply as mlp_apply
from ._mlp import mlp_preactivations as mlp_preactivations
from ._nearly_gaussian import quartic_moments_exact as quartic_moments_exact
from ._nearly_gaussian import quartic_moments_first_order as quartic_moments_first_order
from ._nearly_gaussian import sample_quartic as sample_quartic
from ._ntk import ntk_recursion as ntk_recursion
from ._params import ParameterError as ParameterError
from ._stats import covariance_and_se as covariance_and_se
from ._stats import fit_line as fit_line
from ._stats import mean_and_se as mean_and_se
from ._stats import variance_and_se as variance_and_se
from . import book as book  # noqa: E402

__version__ = "0.1.0"
# performance (issue 8): sharded ensembles, fast samplers, streaming moments, compilation cache
from ._compile_cache import enable_compilation_cache as enable_compilation_cache  # noqa: E402
from ._fast import fast_ensemble_metrics as fast_ensemble_metrics  # noqa: E402
from ._fast import fast_ensemble_moments as fast_ensemble_moments  # noqa: E402
from ._fast import fast_network_metrics as fast_network_metrics  # noqa: E402
from ._sharding import ensemble_map as ensemble_map  # noqa: E402
from ._sharding import ensemble_mesh as ensemble_mesh  # noqa: E402
from ._sharding import ensemble_reduce as ensemble_reduce  # noqa: E402
from ._sharding import moments_from_sums as moments_from_sums  # noqa: E402
