"""Transfer experiments: M2KT against logit distillation and training from scratch.

``run_experiment`` is the one-call entry point (``m2kt experiment``); see ``docs/results.md``.
Importing this package imports torch.
"""

from m2kt_ref.experiments.runner import (
    ABLATIONS,
    kd_grid,
    kd_inputs_to_match,
    merge_results,
    run_experiment,
)

__all__ = ["ABLATIONS", "kd_grid", "kd_inputs_to_match", "merge_results", "run_experiment"]
