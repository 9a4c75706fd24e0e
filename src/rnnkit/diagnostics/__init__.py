"""Vanishing and exploding gradients made visible.

    gradient_flow(model, x, y)  ||dL/dh_t|| (and ||dL/dc_t||) per step for every recurrent layer
    jacobian_norms(cell, x)     ||ds_t/ds_{t-1}||_2 along a sequence and the decay rate of their product
    GradientFlow(x, y)          fit callback: flow every epoch, clipping events, vanishing warnings
    plot_*                      PNG heatmap (step x epoch), norm vs distance, clipping, learning curves
    train_run(RunConfig(...))   a long-range task trained while all of the above is recorded
"""

from .advice import ExplodingGradientWarning as ExplodingGradientWarning
from .advice import Finding as Finding
from .advice import VanishingGradientWarning as VanishingGradientWarning
from .advice import diagnose_flow as diagnose_flow
from .advice import flow_ratio as flow_ratio
from .advice import warn_flow as warn_flow
from .callback import GradientFlow as GradientFlow
from .experiment import RunConfig as RunConfig
from .experiment import RunResult as RunResult
from .experiment import make_task as make_task
from .experiment import results_table as results_table
from .experiment import train_run as train_run
from .flow import LayerFlow as LayerFlow
from .flow import gradient_flow as gradient_flow
from .jacobian import JacobianReport as JacobianReport
from .jacobian import jacobian_norms as jacobian_norms
from .jacobian import step_jacobian as step_jacobian
from .models import CELL_RECIPES as CELL_RECIPES
from .models import ProbedRecurrent as ProbedRecurrent
from .models import SequenceModel as SequenceModel
from .models import make_cell as make_cell
from .plots import plot_clipping as plot_clipping
from .plots import plot_flow_curves as plot_flow_curves
from .plots import plot_flow_heatmap as plot_flow_heatmap
from .plots import plot_learning_curves as plot_learning_curves

__all__ = [
    "CELL_RECIPES",
    "ExplodingGradientWarning",
    "Finding",
    "GradientFlow",
    "JacobianReport",
    "LayerFlow",
    "ProbedRecurrent",
    "RunConfig",
    "RunResult",
    "SequenceModel",
    "VanishingGradientWarning",
    "diagnose_flow",
    "flow_ratio",
    "gradient_flow",
    "jacobian_norms",
    "make_cell",
    "make_task",
    "plot_clipping",
    "plot_flow_curves",
    "plot_flow_heatmap",
    "plot_learning_curves",
    "results_table",
    "step_jacobian",
    "train_run",
    "warn_flow",
]
