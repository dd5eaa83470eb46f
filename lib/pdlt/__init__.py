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
from ._deep_linear_dynamics import aligned_deep_linear_init as aligned_deep_linear_init
from ._deep_linear_dynamics import aligned_gd_map as aligned_gd_map
from ._deep_linear_dynamics import deep_linear_gd as deep_linear_gd
from ._deep_linear_dynamics import deep_linear_product as deep_linear_product
from ._deep_linear_dynamics import deep_mode_ode as deep_mode_ode
from ._deep_linear_dynamics import deep_mode_time as deep_mode_time
from ._deep_linear_dynamics import first_crossing as first_crossing
from ._deep_linear_dynamics import gaussian_product_log_norm as gaussian_product_log_norm
from ._deep_linear_dynamics import learning_times as learning_times
from ._deep_linear_dynamics import mode_strengths as mode_strengths
from ._deep_linear_dynamics import random_deep_linear_init as random_deep_linear_init
from ._deep_linear_dynamics import saxe_half_time as saxe_half_time
from ._deep_linear_dynamics import saxe_logistic as saxe_logistic
from ._length import circle_curve as circle_curve
from ._length import curve_speeds as curve_speeds
from ._length import jacobian_log_norm_moments as jacobian_log_norm_moments
from ._length import jacobian_norm_moments as jacobian_norm_moments
from ._length import layer_moments as layer_moments
from ._length import length_distortion_ensemble as length_distortion_ensemble
from ._length import sample_jacobian_norm_law as sample_jacobian_norm_law
from ._attention import attention_gram_chain as attention_gram_chain
from ._attention import attention_matrix as attention_matrix
from ._attention import attention_stack as attention_stack
from ._attention import equicorrelated_tokens as equicorrelated_tokens
from ._attention import init_attention_stack as init_attention_stack
from ._attention import token_correlations as token_correlations
from ._attention import attention_explicit_grams as attention_explicit_grams
from ._attention import mean_token_correlation as mean_token_correlation
