"""pdlt: the library behind the executable companion to *The Principles of Deep Learning Theory*.

Layers (each imports only from those above it in this list):

1. ``_activations``, ``_gaussian``: activation functions and Gaussian expectations.
2. ``_kernel``, ``_ntk`` and the other recursions: infinite- and finite-width theory.
3. ``_mlp``, ``_ensembles``: Monte Carlo networks at initialization (and training).
4. learning modules (Bayesian inference, kernel learning, gradient-descent training and the
   function-space step).

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
from ._empirical_ntk import empirical_ntk_forward as empirical_ntk_forward
from ._empirical_ntk import ntk_forward_step as ntk_forward_step
from ._function_step import function_space_step as function_space_step
from ._function_step import ntk_prediction as ntk_prediction
from ._ntk_ensembles import ensemble_ntk as ensemble_ntk
from ._ntk_ensembles import ntk_conditional_samples as ntk_conditional_samples
from ._ntk_ensembles import ntk_fluctuation_estimates as ntk_fluctuation_estimates
from ._ntk_ensembles import relative_ntk_variance_estimate as relative_ntk_variance_estimate
from ._ntk_fluctuations import NTKStats as NTKStats
from ._ntk_fluctuations import equivalent_learning_rates as equivalent_learning_rates
from ._ntk_fluctuations import kstar0_asymptotic_ntk as kstar0_asymptotic_ntk
from ._ntk_fluctuations import kstar0_ntk_slopes as kstar0_ntk_slopes
from ._ntk_fluctuations import ntk_critical_init as ntk_critical_init
from ._ntk_fluctuations import ntk_fluctuations as ntk_fluctuations
from ._ntk_fluctuations import perpendicular_exponent as perpendicular_exponent
from ._ntk_fluctuations import relative_ntk_variance as relative_ntk_variance
from ._ntk_fluctuations import relu_ntk_fluctuations_exact as relu_ntk_fluctuations_exact
from ._ntk_fluctuations import scale_invariant_ntk_closed_form as scale_invariant_ntk_closed_form
from ._ntk_fluctuations import scale_invariant_mean_ntk as scale_invariant_mean_ntk
from ._ntk_fluctuations import scale_invariant_ntk_slopes as scale_invariant_ntk_slopes
from ._ntk_fluctuations import single_input_moments as single_input_moments
from ._ntk_fluctuations import taylor_coefficients as taylor_coefficients
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
from ._weights import weights_vertex_recursion as weights_vertex_recursion
from ._weights import weight_sampler as weight_sampler
from ._weights import weights_ensemble_metrics as weights_ensemble_metrics
from . import book as book  # noqa: E402

__version__ = "0.1.0"

# --- core (issue 3): multi-variable Gaussian averages, criticality, four-point vertex, streaming moments
from ._criticality import Criticality as Criticality
from ._criticality import chi_parallel as chi_parallel
from ._criticality import chi_perp as chi_perp
from ._criticality import critical_point as critical_point
from ._criticality import dense_expectation as dense_expectation
from ._criticality import fixed_point as fixed_point
from ._criticality import h_coefficient as h_coefficient
from ._criticality import kstar_zero_coefficients as kstar_zero_coefficients
from ._criticality import sigma_sq as sigma_sq
from ._ensembles import EnsembleMoments as EnsembleMoments
from ._ensembles import ensemble_moments as ensemble_moments
from ._ensembles import warn_nonfinite as warn_nonfinite
from ._gaussian import gaussian_expectation_dK as gaussian_expectation_dK
from ._gaussian import gaussian_expectation_n as gaussian_expectation_n
from ._gaussian import gaussian_moment_tensor as gaussian_moment_tensor
from ._gaussian import psd_factor as psd_factor
from ._gaussian import scale_invariant_expectation2 as scale_invariant_expectation2
from ._vertex import VertexFlow as VertexFlow
from ._vertex import exact_metric_moments as exact_metric_moments
from ._vertex import deep_linear_log_metric as deep_linear_log_metric
from ._vertex import exact_vertex as exact_vertex
from ._vertex import kernel_angle as kernel_angle
from ._vertex import scale_invariant_nu as scale_invariant_nu
from ._vertex import vertex_recursion as vertex_recursion
from ._vertex import vertex_recursion_multi as vertex_recursion_multi
from ._ensembles import READOUTS as READOUTS
from ._ensembles import readout_ensemble as readout_ensemble
from ._stats import excess_kurtosis_and_se as excess_kurtosis_and_se
from ._vertex import READOUT_KURTOSIS as READOUT_KURTOSIS
from ._vertex import readout_excess_kurtosis as readout_excess_kurtosis
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
from ._haar import haar_frame as haar_frame
from ._haar import orthonormalize as orthonormalize
from ._training import init_ensemble as init_ensemble
from ._training import train_ensemble as train_ensemble
from ._training import ensemble_apply as ensemble_apply
from ._training import stacked_ntk as stacked_ntk
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
# performance (issue 8): sharded ensembles, fast samplers, streaming moments, compilation cache
from ._compile_cache import enable_compilation_cache as enable_compilation_cache  # noqa: E402
from ._fast import fast_ensemble_metrics as fast_ensemble_metrics  # noqa: E402
from ._fast import fast_ensemble_moments as fast_ensemble_moments  # noqa: E402
from ._fast import fast_network_metrics as fast_network_metrics  # noqa: E402
from ._sharding import ensemble_map as ensemble_map  # noqa: E402
from ._sharding import ensemble_mesh as ensemble_mesh  # noqa: E402
from ._sharding import ensemble_reduce as ensemble_reduce  # noqa: E402
from ._sharding import moments_from_sums as moments_from_sums  # noqa: E402
# the results ledger: entries, soundness (null and power)
from ._ledger import LedgerEntry as LedgerEntry  # noqa: E402
from ._ledger import unpowered as unpowered  # noqa: E402
# paired (common-random-number) learning times across depth
from ._deep_linear_dynamics import nested_orthogonal_learning_times as nested_orthogonal_learning_times  # noqa: E402
# network descriptions (frozen, validated; consumed by pdlt.nets.kernels / ntk / init / apply / sample)
from . import nets as nets  # noqa: E402
from .nets import LearningRates as LearningRates  # noqa: E402
from .nets import MLP as MLP  # noqa: E402
from .nets import ResidualMLP as ResidualMLP  # noqa: E402
from .nets import WeightLaw as WeightLaw  # noqa: E402
from ._trained import giant_leap as giant_leap  # noqa: E402
from ._trained import giant_leap_ensemble as giant_leap_ensemble  # noqa: E402
from ._trained import linear_control as linear_control  # noqa: E402
from ._trained import control_variate_mean as control_variate_mean  # noqa: E402
from ._trained import control_variate_cov as control_variate_cov  # noqa: E402
from ._trained import untrained_linear_cov as untrained_linear_cov  # noqa: E402
from ._trained import fit_inverse_width as fit_inverse_width  # noqa: E402
from ._trained import trained_outputs as trained_outputs  # noqa: E402
from ._bayes import finite_width_posterior_correction as finite_width_posterior_correction  # noqa: E402
from ._bayes import finite_width_posterior_moments as finite_width_posterior_moments  # noqa: E402
# multi-input NTK statistics at leading order in 1/n (K, Theta, V, D, F, A, B, G1, H1)
from ._ntk_stats import NTKStatistics as NTKStatistics  # noqa: E402
from ._ntk_stats import ntk_statistics as ntk_statistics  # noqa: E402
from ._ntk_ensembles import ntk_conditional_samples_multi as ntk_conditional_samples_multi  # noqa: E402
from ._ntk_ensembles import ntk_statistics_estimates as ntk_statistics_estimates  # noqa: E402
from ._trained import nearly_kernel_prediction as nearly_kernel_prediction  # noqa: E402
from ._trained import quadratic_model_apply as quadratic_model_apply  # noqa: E402
from ._trained import train_quadratic_explicit as train_quadratic_explicit  # noqa: E402
from ._trained import model_ntk_dntk as model_ntk_dntk  # noqa: E402
# dNTK statistics P, Q at leading order in 1/n (recursions, closed forms, ensemble estimators)
from ._dntk_stats import DNTKStatistics as DNTKStatistics  # noqa: E402
from ._dntk_stats import dntk_statistics as dntk_statistics  # noqa: E402
from ._dntk_stats import dntk_statistics_single as dntk_statistics_single  # noqa: E402
from ._dntk_stats import dntk_gaussian_moments as dntk_gaussian_moments  # noqa: E402
from ._dntk_stats import dntk_recursion_step as dntk_recursion_step  # noqa: E402
from ._dntk_stats import scale_invariant_dntk_closed_form as scale_invariant_dntk_closed_form  # noqa: E402
from ._dntk_stats import deep_linear_dntk_closed_form as deep_linear_dntk_closed_form  # noqa: E402
from ._dntk_stats import kstar0_dntk_slopes as kstar0_dntk_slopes  # noqa: E402
from ._dntk import dntk_pq_samples as dntk_pq_samples  # noqa: E402
from ._dntk import dntk_pq_estimates as dntk_pq_estimates  # noqa: E402
from ._dntk import ddntk_mean_samples as ddntk_mean_samples  # noqa: E402
from ._dntk import ddntk_mean_estimates as ddntk_mean_estimates  # noqa: E402
from ._dntk_stats import ddntk_second_layer as ddntk_second_layer  # noqa: E402
from ._trained import ntk_mean_shift_coefficient as ntk_mean_shift_coefficient  # noqa: E402
from ._dntk import ntk_motion_pq_estimates as ntk_motion_pq_estimates  # noqa: E402
