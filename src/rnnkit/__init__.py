"""rnnkit: recurrent neural networks on PyTorch, with a hand-derived BPTT engine."""

__version__ = "0.1.0"
