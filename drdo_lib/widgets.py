"""Interactive controls for notebook 00 (ipywidgets): α, γ, β sliders and a ``logp_reduction`` choice that redraw
Fig. 2 and the bandit dynamics live.

Batch runs stay static: :func:`interactive_enabled` is false when ``DRDO_STATIC=1`` (set by ``run_all.sh`` and
``scripts/test.sh``, so papermill and nbval never depend on a widget front end) or when ipywidgets is missing.
Nothing here runs at import time; ipywidgets is imported lazily.
"""
from __future__ import annotations

import importlib.util
import logging
import os

import matplotlib.pyplot as plt

from drdo_lib.theory import TheoryConfig, fig2_curves, run_all_methods

log = logging.getLogger(__name__)

__all__ = ["interactive_enabled", "theory_explorer"]


def interactive_enabled() -> bool:
    """True when widgets should be live: ``DRDO_STATIC`` is not ``"1"`` and ipywidgets is importable."""
    if os.environ.get("DRDO_STATIC") == "1":
        return False
    return importlib.util.find_spec("ipywidgets") is not None


def theory_explorer(cfg: TheoryConfig, steps: int | None = None):
    """A widget box: sliders for α, γ, β, a ``logp_reduction`` dropdown, and an output area showing Fig. 2 (with the
    chosen γ highlighted among ``cfg.fig2_gammas`` and the chosen α) and the DPO / e-DPO / DRDO bandit dynamics.

    ``steps`` caps the gradient steps per redraw (default ``min(cfg.steps, 1000)``) to keep redraws quick.
    Redraws happen when a slider is released (``continuous_update=False``).
    """
    import ipywidgets as w
    from IPython.display import display

    steps = min(cfg.steps, 1000) if steps is None else steps
    style = {"description_width": "initial"}
    controls = {
        "alpha": w.FloatSlider(value=cfg.alpha, min=0.0, max=2.0, step=0.05, description="α (focal weight)",
                               continuous_update=False, style=style),
        "gamma": w.FloatSlider(value=cfg.gamma, min=0.0, max=5.0, step=0.5, description="γ (focal exponent)",
                               continuous_update=False, style=style),
        "beta": w.FloatLogSlider(value=cfg.beta, base=10, min=-2, max=1, step=0.1, description="β (DPO temperature)",
                                 continuous_update=False, style=style),
        "logp_reduction": w.Dropdown(options=["sum", "mean"], value=cfg.logp_reduction, description="logp_reduction",
                                     style=style),
    }

    def redraw(alpha: float, gamma: float, beta: float, logp_reduction: str) -> None:
        from drdo_lib.plots.theory import plot_dynamics, plot_fig2

        c = cfg.replace(alpha=alpha, gamma=gamma, beta=beta, logp_reduction=logp_reduction)
        gammas = tuple(sorted(set(c.fig2_gammas) | {gamma}))
        curves = fig2_curves(gammas, pi_rejected=c.fig2_pi_rejected, alpha=alpha)
        fig = plot_fig2(curves, highlight_gamma=gamma)
        display(fig)
        plt.close(fig)
        _, _, runs = run_all_methods(c, steps=steps)
        fig = plot_dynamics(runs, beta=beta, title=f"α={alpha:g}, γ={gamma:g}, β={beta:g}, logp_reduction={logp_reduction}")
        display(fig)
        plt.close(fig)

    out = w.interactive_output(redraw, controls)
    box = w.VBox([w.HBox(list(controls.values())[:2]), w.HBox(list(controls.values())[2:]), out])
    return box
