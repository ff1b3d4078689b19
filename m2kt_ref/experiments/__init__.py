"""Transfer experiments: M2KT against logit distillation, with its controls in the same run.

``run_experiment`` is the one-call entry point (``m2kt experiment``); see ``docs/results.md``.
Importing this package imports torch.
"""

from m2kt_ref.experiments.runner import kd_grid, merge_results, run_experiment

__all__ = ["kd_grid", "merge_results", "run_experiment"]
