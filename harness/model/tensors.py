"""The one way a tensor leaves the device for numpy: detached, moved to the CPU, as float
arrays keep their dtype. Readouts must go through it, never call .numpy() on a tensor
that may live on a GPU."""
from __future__ import annotations

import numpy as np
import torch


def to_numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """A numpy copy of x on the CPU (bfloat16, which numpy lacks, becomes float32)."""
    if isinstance(x, np.ndarray):
        return x
    x = x.detach().cpu()
    if x.dtype == torch.bfloat16:
        x = x.float()
    return x.numpy()
