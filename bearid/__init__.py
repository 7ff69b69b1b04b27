"""Make your own image classifier from a web image search, as a reproducible pipeline."""

__version__ = "0.1.0"

import warnings

# fastai's import of torch.jit.script warns on every stage start; it is not ours to fix.
warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
