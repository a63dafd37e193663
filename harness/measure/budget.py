"""How much work goes into one forward pass: windows per pass and filters per pass.

On the CPU the defaults are 16 windows and one filter per pass: the CPU is
compute-bound at that size, so larger passes only cost memory (benchmarks/NOTES.md).
On CUDA, "auto" sizes passes from the free device memory and an estimate of the
activation memory one window needs, leaving half of the free memory as headroom
(allocator fragmentation, the NLL chunk, the saved prefixes)."""
from __future__ import annotations

from sinkbench.errors import SinkbenchError

# torch and .metrics are imported where used: settings (sinkbench.measure.config, hence the pytest
# plugin every pytest run in the environment loads) must not pull in torch.

CPU_WINDOWS_PER_PASS = 16
MAX_FILTERS_PER_PASS = 32
HEADROOM = 0.5


def parse_count(value, option: str) -> str | int:
    """'auto' or a positive integer (from pyproject, the command line or code)."""
    if str(value).strip().lower() == "auto":
        return "auto"
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise SinkbenchError(f"{option}: expected 'auto' or a positive integer, got {value!r}")
    return n


def window_bytes(subject, seq_len: int) -> int:
    """Peak activation bytes of one window in a no-grad pass (an estimate): the
    residual and its normed copies, q/k/v/o, the MLP's three intermediates, and an
    eager attention map with its softmax copy (the worst case: a pass reading probs)."""
    cfg = getattr(subject.model.config, "text_config", subject.model.config)
    d = subject.d_model
    mlp = getattr(cfg, "intermediate_size", None) or 4 * d
    heads = getattr(cfg, "num_attention_heads", None) or 1
    itemsize = next(subject.model.parameters()).element_size()
    return seq_len * itemsize * (8 * d + 3 * mlp + 2 * heads * seq_len)


def fit(free_bytes: int, per_window: int, n_windows: int) -> int:
    """Windows that fit in HEADROOM of free_bytes after two NLL chunks, within 1..n_windows."""
    from sinkbench.model.metrics import NLL_CHUNK_ELEMENTS

    usable = int(free_bytes * HEADROOM) - 2 * 4 * NLL_CHUNK_ELEMENTS
    return max(1, min(n_windows, usable // max(1, per_window)))


def free_device_bytes(device: torch.device) -> int | None:
    if device.type != "cuda":
        return None
    import torch

    free, _total = torch.cuda.mem_get_info(device)
    return free


def windows_per_pass(setting, subject, n_windows: int, seq_len: int) -> int:
    """--batch-size: an integer, or 'auto' (16 on CPU; what fits on CUDA)."""
    setting = parse_count(setting, "--batch-size")
    if setting != "auto":
        return setting
    free = free_device_bytes(subject.device)
    if free is None:
        return min(CPU_WINDOWS_PER_PASS, n_windows)
    return fit(free, window_bytes(subject, seq_len), n_windows)


def filters_per_pass(setting, subject, windows: int, seq_len: int) -> int:
    """--filters-per-pass: an integer, or 'auto' (1 on CPU; on CUDA as many copies of
    a full batch of windows as fit, at most MAX_FILTERS_PER_PASS)."""
    setting = parse_count(setting, "--filters-per-pass")
    if setting != "auto":
        return setting
    free = free_device_bytes(subject.device)
    if free is None:
        return 1
    return min(MAX_FILTERS_PER_PASS, fit(free, window_bytes(subject, seq_len) * windows, MAX_FILTERS_PER_PASS))
