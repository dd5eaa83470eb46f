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
from ._parametrizations import PARAMETRIZATIONS as PARAMETRIZATIONS
from ._parametrizations import Parametrization as Parametrization
from ._parametrizations import feature_change as feature_change
from ._parametrizations import parametrization as parametrization
from ._parametrizations import teacher_data as teacher_data
from ._parametrizations import train_losses as train_losses
from ._resnet_scaling import branch_multiplier as branch_multiplier
from ._resnet_scaling import linear_resnet_log_norm as linear_resnet_log_norm
from ._resnet_scaling import residual_vertex_closure as residual_vertex_closure
from ._resnet_scaling import resnet_ensemble as resnet_ensemble
from ._resnet_scaling import resnet_explicit as resnet_explicit
from ._resnet_scaling import resnet_fluctuation as resnet_fluctuation
from ._resnet_scaling import resnet_kernel_ode as resnet_kernel_ode
from ._resnet_scaling import resnet_kernel_recursion as resnet_kernel_recursion
from ._resnet_scaling import sigma_moments as sigma_moments
from ._weights import WEIGHT_KINDS as WEIGHT_KINDS
from ._weights import WeightSampler as WeightSampler
from ._weights import mlp_forward_with as mlp_forward_with
from ._weights import relu_gaussian_exact as relu_gaussian_exact
from ._weights import relu_orthogonal_exact as relu_orthogonal_exact
from ._weights import sample_weights as sample_weights
from ._weights import vertex_recursion as vertex_recursion
from ._weights import weight_sampler as weight_sampler
from ._weights import weights_ensemble_metrics as weights_ensemble_metrics
from . import book as book  # noqa: E402

__version__ = "0.1.0"
