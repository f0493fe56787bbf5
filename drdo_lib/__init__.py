"""drdo_lib: the library behind the DRDO paper companion (losses, data, models, training, evaluation, plots).

Submodules are imported on demand (``from drdo_lib.losses import drdo_loss``); importing the package itself has no
side effects and does not import torch.
"""
__version__ = "0.1.0"
