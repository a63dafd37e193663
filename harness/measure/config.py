"""Settings: documented defaults from [tool.sinkbench] in pyproject.toml,
overridden by command-line options. One frozen dataclass travels everywhere."""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from sinkbench.measure import budget
from sinkbench.errors import SinkbenchError


@dataclass(frozen=True)
class Settings:
    n_bands: int = 20
    n_seqs: int = 16
    seq_len: int = 128
    layers: str = "0.25,0.5,0.75"
    windows: str = "spread"  # layout of the test windows over the text: spread or consecutive
    n_select: int = 8  # selection windows (between the test windows) for choices made from data
    units: str = "window"  # the unit of replication: each window, or each document (its windows averaged)
    dataset: str = "auto"  # pydoc for pretrained models, its own language for a zoo model
    device: str = "cpu"
    dtype: str = "auto"  # fp32 on CPU, fp32 on CUDA unless the user asks bf16
    alpha: float = 0.05
    h1_min_delta: float = 0.5
    h1_min_sink_drop: float = 0.2
    h2_ks: str = "0.25,0.5,0.75"
    frontier_tolerance: float = 0.25
    h2_min_frontier: float = 0.25
    h4_rho: float = 3.0
    h4_min_recovered: float = 0.5
    h5_min_share: float = 0.5
    h5_min_sink_drop: float = 0.1
    h5_min_nll_rise: float = 0.05
    h5_controls: int = 3
    h6_min_ratio: float = 100.0  # H6 scale-free massive activation: |h| > this x the layer's median |h|
    h6_min_fold: float = 5.0  # H6 (a): band-K share of each massive coordinate >= this x the chance share
    h6_tolerance: float = 0.1  # H6 (b): nats the NLL may rise when the sink's massive coordinates are set to their mean
    h6_random_sets: int = 9999  # H6 (a): random coordinate sets of the same size the set mean is ranked against (recorded, not read)
    h6_min_zero_rise: float = 0.693  # H6 b-zero: nats zeroing must raise the NLL by (ln 2: at least doubles perplexity)
    h7_window: int = 0  # H7: keys a sliding-window regime keeps (0: seq_len // 4)
    h7_min_gap: float = 0.1  # H7 (a): nats NLL(window) - NLL(window + first token) must exceed
    h7_min_recovered: float = 0.5  # H7 (b)/(c): share of the recompute baseline's recovery the kept sink must recover (the control must not)
    h7_min_designated: float = 0.5  # H7 (d): share of the natural sink's recovery the designated sink must recover
    h3_min_ratio: float = 5.0  # H3 sink-like: attention received / the layer's own at those (query, key) cells
    h3_max_cv: float = 1.0  # H3 sink-like: coefficient of variation over the key's queries (a steady bar)
    h3_min_queries: int = 8  # H3: positions measured need at least this many later queries
    h3_frequent_share: float = 0.01  # H3: the text's most frequent share of token types counts as frequent
    h3_position_bins: int = 10  # H3 claims 2, 3: bins of nearby positions (after the first 4) whose mean is removed; the record's histogram
    random_seeds: int = 3
    bootstrap: int = 2000
    batch_size: str = "auto"  # windows per pass: 'auto' (16 on CPU, what fits on CUDA) or an integer
    filters_per_pass: str = "auto"  # filters stacked in one pass: 'auto' (1 on CPU, what fits on CUDA) or an integer
    basis: str = "U"  # bands from the unembedding (U, norm gain folded in) or the embedding (E)
    bands: str = ""  # optional restriction of H2 k values, in band-spec syntax
    results: str = "results"
    trust_remote_code: bool = False
    remote: bool = False  # run the interventions on NDIF (sinkbench.model.remote); needs NDIF_API_KEY and a hub id
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def resolved_dtype(self) -> str:
        if self.dtype != "auto":
            return self.dtype
        return "float32"

    def windows_per_pass(self, subject) -> int:
        """--batch-size resolved for this subject's device (sinkbench.measure.budget)."""
        return budget.windows_per_pass(self.batch_size, subject, self.n_seqs, self.seq_len)

    def filters_per_pass_for(self, subject) -> int:
        """--filters-per-pass resolved for this subject's device (sinkbench.measure.budget)."""
        return budget.filters_per_pass(self.filters_per_pass, subject, self.windows_per_pass(subject), self.seq_len)

    def replace(self, **changes) -> "Settings":
        return dataclasses.replace(self, **changes)


FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
USER_KEYS = tuple(k for k in FIELDS if k != "extra")  # what [tool.sinkbench] may set (extra: run-time state, not a setting)
# Settings that were removed: a pyproject that still sets one is told why, in one line, rather
# than "unknown key" (the user's file was valid when written).
REMOVED = {
    "h3_permutations": "H3's claims are tested across windows now (the mean test over per-window statistics), so no "
                       "H3 test permutes; delete the line",
}
MIN_SEQ_LEN = 12  # H3 needs positions with at least 8 later queries, and a few of them

# Statistical settings and the ranges they must lie in: (low, high, low open?, high open?).
RANGES = {
    "alpha": (0.0, 0.5, True, False),
    "h1_min_delta": (0.0, None, False, False),
    "h1_min_sink_drop": (0.0, 1.0, False, False),
    "frontier_tolerance": (0.0, None, True, False),
    "h2_min_frontier": (0.0, 1.0, True, True),
    "h4_rho": (1.0, None, True, False),
    "h4_min_recovered": (0.0, 1.0, False, False),
    "h5_min_share": (0.0, 1.0, False, False),
    "h5_min_sink_drop": (0.0, 1.0, False, False),
    "h5_min_nll_rise": (0.0, None, False, False),
    "h3_min_ratio": (1.0, None, True, False),
    "h3_max_cv": (0.0, None, True, False),
    "h3_min_queries": (1, None, False, False),
    "h3_frequent_share": (0.0, 1.0, True, False),
    "h3_position_bins": (1, None, False, False),
    "h6_min_ratio": (1.0, None, True, False),
    "h6_min_fold": (1.0, None, False, False),
    "h6_tolerance": (0.0, None, True, False),
    "h6_random_sets": (99, None, False, False),
    "h6_min_zero_rise": (0.0, None, True, False),
    "h7_window": (0, None, False, False),
    "h7_min_gap": (0.0, None, False, False),
    "h7_min_recovered": (0.0, 1.0, True, False),
    "h7_min_designated": (0.0, 1.0, True, False),
}


def setting_name(key: str) -> str:
    """How the user spells a setting: the command-line option, or its pyproject key."""
    option = f"--{key.replace('_', '-')}"
    return option if key in COMMAND_LINE else f"{key} ([tool.sinkbench] in pyproject.toml)"


COMMAND_LINE = {"n_bands", "n_seqs", "seq_len", "layers", "windows", "n_select", "units", "dataset", "device", "dtype", "alpha",
                "batch_size", "filters_per_pass", "basis", "bands", "results"}


def check_statistics(s: "Settings") -> None:
    """One-line errors for statistical settings outside their meaningful ranges."""
    for key, (lo, hi, lo_open, hi_open) in RANGES.items():
        v = getattr(s, key)
        bad = v != v or (lo is not None and (v <= lo if lo_open else v < lo)) or (hi is not None and (v >= hi if hi_open else v > hi))
        if bad:
            interval = f"{'(' if lo_open else '['}{lo}, {'inf' if hi is None else hi}{')' if hi_open or hi is None else ']'}"
            raise SinkbenchError(f"{setting_name(key)}: {v} is outside {interval}; pass a value in that range")
    from sinkbench.stats.units import UNITS

    if s.units not in UNITS:
        raise SinkbenchError(f"--units {s.units!r}: expected one of {', '.join(UNITS)}")
    fractions = []
    for part in str(s.h2_ks).split(","):
        try:
            fractions.append(float(part))
        except ValueError:
            raise SinkbenchError(f"{setting_name('h2_ks')}: {part.strip()!r} is not a number; expected fractions of K "
                                 "like '0.25,0.5,0.75'") from None
    if any(not 0.0 < f < 1.0 for f in fractions):
        raise SinkbenchError(f"{setting_name('h2_ks')}: {s.h2_ks!r}; every fraction of K must lie in (0, 1)")


def load_pyproject_defaults(root: Path) -> dict:
    """The [tool.sinkbench] table of root/pyproject.toml (empty if absent)."""
    path = Path(root) / "pyproject.toml"
    if not path.exists():
        return {}
    table = {k: v for k, v in _tool_table(path).items() if not isinstance(v, dict)}  # tables: units' settings
    removed = sorted(set(table) & set(REMOVED))
    if removed:
        raise SinkbenchError(f"[tool.sinkbench] in {path}: {removed[0]} was removed: {REMOVED[removed[0]]}"
                             + (f" (also remove {', '.join(removed[1:])})" if len(removed) > 1 else ""))
    unknown = sorted(set(table) - set(USER_KEYS))
    if unknown:
        raise SinkbenchError(
            f"[tool.sinkbench] in {path}: unknown key(s) {unknown}; known keys: {', '.join(sorted(USER_KEYS))}; "
            "a hypothesis unit's own settings go in a table [tool.sinkbench.<unit>] (`sinkbench list` shows them)"
        )
    return table


def _tool_table(path: Path) -> dict:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        if path.read_bytes()[:3] == b"\xef\xbb\xbf":  # named, not "Invalid statement (line 1, column 1)"
            raise SinkbenchError(f"{path}: starts with a UTF-8 byte-order mark (BOM), which TOML does not allow; save it as UTF-8 without a BOM") from None
        raise SinkbenchError(f"{path}: not valid TOML ({exc}); fix the file") from None
    except UnicodeDecodeError as exc:  # a Latin-1 byte: TOML is UTF-8
        raise SinkbenchError(f"{path}: not UTF-8 (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
                             "TOML files are UTF-8: re-save it as UTF-8") from None
    tool = data.get("tool", {})
    table = tool.get("sinkbench", {}) if isinstance(tool, dict) else None
    if not isinstance(table, dict):
        raise SinkbenchError(f"{path}: [tool.sinkbench] must be a table of settings (key = value lines under "
                             f"[tool.sinkbench]), got {type(table if isinstance(tool, dict) else tool).__name__}")
    return table


def unit_tables(root: Path | None) -> dict:
    """The [tool.sinkbench.<unit>] tables of root/pyproject.toml: unit -> {key: value}, checked
    against the units' declared settings by sinkbench.registry.resolve_settings."""
    path = Path(root) / "pyproject.toml" if root is not None else None
    if path is None or not path.exists():
        return {}
    return {k: v for k, v in _tool_table(path).items() if isinstance(v, dict)}


def make_settings(root: Path | None = None, **overrides) -> Settings:
    """Defaults < pyproject.toml < explicit overrides (None means 'not given')."""
    values = load_pyproject_defaults(root) if root is not None else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    values = coerce(values)
    for key in ("batch_size", "filters_per_pass"):
        values[key] = str(budget.parse_count(values.get(key, "auto"), f"--{key.replace('_', '-')}"))
    s = Settings(**values)
    check_settings(s)
    return s


def coerce(values: dict, where: str = "") -> dict:
    """Settings values as their fields' types; a value that is not a number of the right
    kind is a one-line error naming the setting (and `where` it was set, if not an option)."""
    out = dict(values)
    for key, value in values.items():
        kind = FIELDS[key].type
        try:
            if kind in ("int", int):
                if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
                    raise ValueError
                out[key] = int(str(value).strip()) if isinstance(value, str) else int(value)
            elif kind in ("float", float):
                if isinstance(value, bool):
                    raise ValueError
                out[key] = float(value)
            elif kind in ("str", str):
                if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                    raise ValueError
                out[key] = str(value)  # layers = 3 in pyproject.toml means '3'
        except (TypeError, ValueError):
            what = {"int": "a whole number", "float": "a number", "str": "a string"}.get(str(kind), "a value")
            name = f"{where}{key}" if where else setting_name(key)
            raise SinkbenchError(f"{name}: expected {what}, got {value!r}") from None
    return out


def check_settings(s: "Settings", where: str = "") -> None:
    """Every range and choice of the settings; `where` prefixes the message when the values
    come from somewhere other than the command line (a --models-file entry)."""
    def name(key: str) -> str:
        return f"{where}{key}" if where else setting_name(key)
    for key in ("n_bands", "n_seqs", "seq_len", "random_seeds", "bootstrap", "h5_controls"):
        if getattr(s, key) < 1:
            raise SinkbenchError(f"{name(key)}: must be a positive integer, got {getattr(s, key)}")
    check_statistics(s)
    if s.n_bands < 3:
        raise SinkbenchError(f"--n-bands: need at least 3 bands (head, middle, dark tail), got {s.n_bands}")
    if s.seq_len < MIN_SEQ_LEN:
        raise SinkbenchError(f"{name('seq_len')}: need at least {MIN_SEQ_LEN} tokens per window (H3 measures positions with "
                             f"8 later queries), got {s.seq_len}")
    if s.windows not in ("spread", "consecutive"):
        raise SinkbenchError(f"{name('windows')} {s.windows!r}: expected 'spread' (default) or 'consecutive'")
    if s.n_select < 1:
        raise SinkbenchError(f"{name('n_select')}: need at least 1 selection window, got {s.n_select}")
    if s.basis not in ("U", "E"):
        raise SinkbenchError(f"--basis {s.basis!r}: expected U (unembedding) or E (embedding)")
    if s.dtype not in ("auto", "float32", "fp32", "bfloat16", "bf16", "float16", "fp16"):
        raise SinkbenchError(f"--dtype: expected float32, bfloat16 or float16 (or auto), got {s.dtype!r}")


# Settings a --models-file [[model]] or [[series]] table may set for its model(s) alone: the
# windows (a small model's context may be shorter than the others'). Records carry the values used.
PER_MODEL = ("seq_len", "n_seqs", "n_select", "windows")


def for_model(s: "Settings", overrides: dict, where: str) -> "Settings":
    """The settings of one model: s with its --models-file overrides, checked like options."""
    unknown = sorted(set(overrides) - set(PER_MODEL))
    if unknown:
        raise SinkbenchError(f"{where}: {unknown} cannot be set per model; per-model settings are {', '.join(PER_MODEL)}")
    if not overrides:
        return s
    out = s.replace(**coerce(overrides, where))
    check_settings(out, where)
    return out
