"""Datasets of the DRDO companion: loaders, the paper's splits and the synthetic testbed (see submodules)."""
