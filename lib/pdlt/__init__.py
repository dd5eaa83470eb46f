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
from ._information import ensemble_mi as ensemble_mi
from ._information import gaussian_entropy as gaussian_entropy
from ._information import lognormal_scale_law as lognormal_scale_law
from ._information import mi_series as mi_series
from ._information import mi_series_coefficients as mi_series_coefficients
from ._information import optimal_aspect_ratio as optimal_aspect_ratio
from ._information import optimal_t as optimal_t
from ._information import relu_output_t as relu_output_t
from ._information import relu_scale_law as relu_scale_law
from ._information import scale_mixture_entropy as scale_mixture_entropy
from ._information import scale_mixture_kl as scale_mixture_kl
from ._information import scale_mixture_mi as scale_mixture_mi
from ._information import two_point_scale_law as two_point_scale_law
from ._residual import effective_aspect_ratio as effective_aspect_ratio
from ._residual import init_residual_mlp as init_residual_mlp
from ._residual import residual_apply as residual_apply
from ._residual import residual_chi as residual_chi
from ._residual import residual_critical_xi as residual_critical_xi
from ._residual import residual_ensemble as residual_ensemble
from ._residual import residual_kernel_recursion as residual_kernel_recursion
from ._residual import residual_ntk_recursion as residual_ntk_recursion
from ._residual import residual_nu as residual_nu
from ._residual import residual_vertex_recursion as residual_vertex_recursion
from ._residual import vertex_from_pairs as vertex_from_pairs
from ._information import mi_coefficients_by_extrapolation as mi_coefficients_by_extrapolation
from ._information import mixture_kl_series as mixture_kl_series
