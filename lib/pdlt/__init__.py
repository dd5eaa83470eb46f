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
from ._empirical_ntk import empirical_ntk as empirical_ntk
from ._empirical_ntk import empirical_ntk_autodiff as empirical_ntk_autodiff
from ._empirical_ntk import learning_rate_tensor as learning_rate_tensor
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
from ._training import gd_step as gd_step
from ._training import mse_loss as mse_loss
from ._stats import covariance_and_se as covariance_and_se
from ._stats import fit_line as fit_line
from ._stats import mean_and_se as mean_and_se
from ._stats import variance_and_se as variance_and_se
from . import book as book  # noqa: E402

__version__ = "0.1.0"
from ._training import init_ensemble as init_ensemble
from ._training import train_ensemble as train_ensemble
from ._training import ensemble_apply as ensemble_apply
from ._training import ensemble_ntk as ensemble_ntk
from ._training import ntk_change as ntk_change
from ._kernel_learning import frozen_ntk_prediction as frozen_ntk_prediction
from ._kernel_learning import trained_ensemble_moments as trained_ensemble_moments
from ._kernel_learning import infinite_width_ensemble as infinite_width_ensemble
from ._kernel_learning import bias_variance as bias_variance
from ._kernel_learning import synthetic_task as synthetic_task
from ._stats import fit_power_law as fit_power_law
from ._training import trained_ensemble_run as trained_ensemble_run
from ._bayes import gp_posterior as gp_posterior
from ._bayes import log_evidence as log_evidence
from ._bayes import relu_evidence_optimal_C_W as relu_evidence_optimal_C_W
from ._bayes import single_input_V as single_input_V
from ._bayes import hebbian_shift_first_order as hebbian_shift_first_order
from ._bayes import hebbian_shift_relu_mc as hebbian_shift_relu_mc
from ._bayes import finite_width_posterior_mean as finite_width_posterior_mean
from ._dntk import empirical_dntk as empirical_dntk
from ._dntk import ensemble_dntk_moment as ensemble_dntk_moment
from ._dntk import ntk_relative_variance as ntk_relative_variance
from ._stats import fit_linear as fit_linear
from ._dntk import relu_ntk_relative_variance_leading as relu_ntk_relative_variance_leading
from ._dntk import train_quadratic_model as train_quadratic_model
from ._dntk import dntk_moment_mean as dntk_moment_mean
