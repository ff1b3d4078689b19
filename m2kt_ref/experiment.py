"""Public entry point of the transfer experiments (re-exports :mod:`m2kt_ref.experiments`)."""

from m2kt_ref.experiments import (
    ABLATIONS,
    kd_grid,
    kd_inputs_to_match,
    merge_results,
    run_experiment,
)

__all__ = ["ABLATIONS", "kd_grid", "kd_inputs_to_match", "merge_results", "run_experiment"]
