"""Bench, what a hypothesis unit's measure and check functions are handed (the `sinkbench`
fixture): the loaded models, their filter sweeps, the memoised grid of each hypothesis on
each model, progress lines, the case key for --resume and the result recorder. One per
pytest session (sinkbench.run.plugin makes it)."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from sinkbench.read import results
from sinkbench.errors import SinkbenchError


def settings_for(config, name: str):
    """The settings one model runs under: the options, with its --models-file window settings."""
    return config.sinkbench_model_settings.get(name, config.sinkbench_settings)



def fail(exc: SinkbenchError):
    """Fail the test with the message alone: no traceback, and not the same message twice
    (pytest prints an exception's context, here the SinkbenchError being handled)."""
    raise pytest.fail.Exception(str(exc), pytrace=False) from None


class Bench:
    """What a hypothesis test needs: subjects, sweeps, Holm-corrected grids, a recorder.
    Everything is memoised per model for the whole session."""

    def __init__(self, config):
        self.config = config
        self.settings = config.sinkbench_settings
        self._subjects, self._sweeps, self._grids = {}, {}, {}
        self._done = None

    def release(self, name: str) -> None:
        """Forget one model: its subject (the weights), its sweep and every grid measured on it.
        The run goes model by model (plugin.model_by_model), so peak memory is one model's."""
        import gc

        self._subjects.pop(name, None)
        self._sweeps.pop(name, None)
        for key in [k for k in self._grids if k[1] == name]:
            del self._grids[key]
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass

    def of(self, name: str):
        """The settings of one model (its --models-file window settings over the options)."""
        return settings_for(self.config, name)

    @property
    def results_path(self) -> Path:
        return Path(self.settings.results) / "results.jsonl"

    def subject(self, name: str):
        if name not in self._subjects:
            from sinkbench.model.access import load_subject

            s = self.settings
            t0 = time.perf_counter()
            self.say(f"loading {name} ({s.resolved_dtype()} on {s.device}) ...")
            try:
                if s.remote:
                    from sinkbench.model.remote import load_remote_subject

                    self._subjects[name] = load_remote_subject(name, s.dtype, s.trust_remote_code)
                else:
                    self._subjects[name] = load_subject(name, s.device, s.resolved_dtype(), s.trust_remote_code)
            except SinkbenchError as exc:
                fail(exc)
            self.say(f"loaded {name} in {time.perf_counter() - t0:.1f}s")
        return self._subjects[name]

    def sweep(self, name: str):
        if name not in self._sweeps:
            from sinkbench.measure.data import windows_for
            from sinkbench.measure.spectrum import spectrum_for
            from sinkbench.measure.sweep import FilterSweep

            s, subj = self.of(name), self.subject(name)
            try:
                windows = windows_for(subj, s.dataset, s.seq_len, s.n_seqs, layout=s.windows)
                spectrum = spectrum_for(subj, s.n_bands, s.basis)
            except SinkbenchError as exc:
                fail(exc)
            self._sweeps[name] = FilterSweep(subj, windows, spectrum, s.windows_per_pass(subj),
                                             s.random_seeds, layers=self.layers(name), filters_per_pass=s.filters_per_pass_for(subj))
        return self._sweeps[name]

    def layers(self, name: str) -> list[int]:
        from sinkbench.measure.experiments import parse_layers

        return parse_layers(self.settings.layers, self.subject(name).n_layers, name)

    def dark_alignment(self, name: str) -> dict:
        from sinkbench.measure.spectrum import dark_alignment

        return self.grid("UE", name, lambda: dark_alignment(self.subject(name), self.settings.n_bands))

    def sink_rate(self, name: str) -> dict:
        """Sink rate (Gu et al. 2024) of the unedited model on the test windows (memoised)."""
        from sinkbench.measure.experiments import sink_rates

        # natural text, then random and repeated tokens (sinkbench.measure.sink_controls)
        return self.grid("sink rate", name, lambda: sink_rates(self.sweep(name), self.of(name)),
                         passes=lambda: 3 * self.runs(name, self.of(name).n_seqs))

    def step_fields(self, name: str) -> dict:
        """The training step (and tokens seen, series) of the model's checkpoint, where known:
        declared by --models-file or read from the checkpoint's manifest / trainer state."""
        from sinkbench.read.series import step_fields

        return step_fields(self.subject(name), getattr(self.config, "sinkbench_steps", {}).get(name))

    def say(self, msg: str) -> None:
        """Progress on the terminal while the work runs (model loads, grids, passes done and
        time left), written outside pytest's output capture; silent with -q."""
        if self.config.option.verbose < 0:
            return
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is None:
            return
        capman = self.config.pluginmanager.get_plugin("capturemanager")
        if capman is None:
            tr.write_line(f"[sinkbench] {msg}")
            return
        with capman.global_and_fixture_disabled():  # as pytest-benchmark does: reach the terminal now
            tr.ensure_newline()
            tr.write_line(f"[sinkbench] {msg}")
            tr.flush()

    def runs(self, name: str, n_windows: int) -> int:
        """Forward passes (batches of windows) over n_windows windows of one model."""
        import math

        return math.ceil(n_windows / self.of(name).windows_per_pass(self.subject(name)))

    def base_passes(self, name: str) -> int:
        """The unedited pass over the test windows, unless the sweep has run it already."""
        return 0 if ("base",) in self.sweep(name)._memo else self.runs(name, self.of(name).n_seqs)

    def filter_passes(self, name: str, wanted: list[str]) -> int:
        """Passes a grid of filters (wanted, at each layer of the grid) still needs: those that
        read sink mass run apart from those that do not."""
        import math

        sweep = self.sweep(name)
        todo = 0
        for layer in self.layers(name):
            names = [n for n in wanted if (layer, n) not in sweep._memo]
            mass = sum(n in ("dark_all", "dark_sink", "dark_nonsink") for n in names)
            todo += math.ceil(mass / sweep.filters_per_pass) + math.ceil((len(names) - mass) / sweep.filters_per_pass)
        return self.base_passes(name) + todo * self.runs(name, self.of(name).n_seqs)

    def results(self, unit, name: str) -> dict:
        """A hypothesis unit's grid on one model (its whole Holm family), memoised."""
        return self.grid(unit.name, name, lambda: unit.measure(self, name),
                         passes=(lambda: unit.passes(self, name)) if unit.passes else None)

    def grid(self, hypothesis: str, name: str, build, quiet: bool = False, passes=None):
        """Memoised result of build() for one hypothesis and model (a whole Holm family).
        passes(): the forward passes build runs, for the progress line (None: unknown)."""
        key = (hypothesis, name)
        if key not in self._grids and quiet:
            try:
                self._grids[key] = build()
            except SinkbenchError as exc:
                fail(exc)
        if key not in self._grids:
            t0 = time.perf_counter()
            passes0 = self._sweeps[name].passes if name in self._sweeps else 0
            from sinkbench.measure import checkpoint, progress

            restored0 = checkpoint.active().restored if checkpoint.active() is not None else 0

            self.say(f"{hypothesis} on {name}: measuring the grid ...")
            try:
                total = passes() if passes is not None else 0
                with progress.tracking(f"{hypothesis} on {name}", total, self.say):
                    self._grids[key] = build()
            except SinkbenchError as exc:
                fail(exc)
            passes = (self._sweeps[name].passes if name in self._sweeps else 0) - passes0
            store, resumed = checkpoint.active(), ""
            if store is not None and store.restored > restored0:
                resumed = f"; {store.restored - restored0} passes read back from checkpoints"
            self.say(f"{hypothesis} on {name}: done in {time.perf_counter() - t0:.1f}s ({passes} filter-sweep passes{resumed})")
        return self._grids[key]

    def window_layout(self, name: str) -> dict:
        """Where the test and selection windows start in the tokenized text (native BOS use)."""
        from sinkbench.measure.data import window_layout

        s = self.of(name)
        return self.grid("windows", name, lambda: window_layout(self.subject(name), s.dataset, s.seq_len, s.n_seqs,
                                                               layout=s.windows, n_select=s.n_select), quiet=True)

    def params(self, name: str, **extra) -> dict:
        from sinkbench.measure.data import dataset_name

        s = self.of(name)
        sweep = self.sweep(name)
        return {
            "n_bands": s.n_bands, "n_seqs": s.n_seqs, "seq_len": s.seq_len, "dataset": dataset_name(self.subject(name), s.dataset),
            "windows": self.window_layout(name), "n_select": s.n_select, "units": s.units,
            "dtype": self.subject(name).dtype, "device": s.device, "seeds": sweep.seeds, "alpha": s.alpha, "basis": s.basis,
            "uses_bos": self.subject(name).uses_bos, "layers_grid": self.layers(name), **extra,
        }

    def unit_settings(self, unit, name: str):
        """A unit's own settings (Hypothesis(settings=...)) for one model: its defaults, with
        what [tool.sinkbench.<unit>], a --models-file's [settings.<unit>] and --set chose.
        Read as attributes or keys: bench.unit_settings("X1", model_name).min_share."""
        from sinkbench import registry

        u = unit if isinstance(unit, registry.Hypothesis) else registry.find(unit)
        if u is None:
            raise SinkbenchError(f"bench.unit_settings({unit!r}): no such unit; units: {', '.join(registry.units())}")
        return registry.settings_for(u, getattr(self.config, "sinkbench_unit_settings", {}))

    def units_of(self, hypothesis: str) -> list:
        """The unit whose test is running, when it records under `hypothesis` (H4-A and H4-B
        both record H4); else every unit that does."""
        from sinkbench import registry

        current = getattr(self, "current_unit", None)
        if current is not None and current.hypothesis == hypothesis:
            return [current]
        return registry.recording(hypothesis)

    def unit_identity(self, hypothesis: str, name: str) -> dict:
        """sinkbench's version, and the name, distribution, version, source hash and settings
        of the unit(s) recording `hypothesis`: what a case key and a record say of the code."""
        from sinkbench import __version__, registry

        units = self.units_of(hypothesis)
        return {"sinkbench": __version__,
                "units": [dict(registry.identity(u), settings=dict(self.unit_settings(u, name))) for u in units]}

    def case_key(self, hypothesis: str, name: str, layer=None, **case) -> str:
        """Identity of a test case for --resume: model weights hash, case fields, every setting,
        sinkbench's version and the unit's identity (package, version, source hash, settings)."""
        import dataclasses
        import hashlib
        import json

        from sinkbench.model import models

        if self.settings.remote:  # the hub id and the commit its revision resolves to
            from sinkbench.model.remote import weights_id

            sha = weights_id(name)
        else:
            sha = models.weights_sha256(models.resolve(name))
        # Pass sizes change no result (beyond float rounding), so a resumed run may change them.
        settings = {k: v for k, v in dataclasses.asdict(self.of(name)).items()
                    if k not in ("results", "extra", "batch_size", "filters_per_pass")}
        blob = json.dumps([hypothesis, name, sha, layer, sorted(case.items()), settings, self.unit_identity(hypothesis, name)],
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    def resume(self, hypothesis: str, name: str, layer=None, **case) -> None:
        """With --resume, skip a case already in results.jsonl (its old record still counts).
        A record of the same case made by other code or settings (another sinkbench version,
        unit version, unit source or setting) is not reused: the case is recomputed, and one
        line says why (sinkbench.run.resume_note)."""
        if not self.config.getoption("sb_resume"):
            return
        key = self.case_key(hypothesis, name, layer, **case)
        if self._done is None:
            self._done = {r.get("case_key"): r for r in results.read_jsonl(self.results_path)}
        from sinkbench.run.resume_note import made_by_another_version, reusable, why_recomputed

        # a check may name fewer case fields than its record (H2a: k, and then claim 'a'): the
        # record is reused when exactly one case of this code and these settings matches
        found = self._done.get(key) or reusable(self, hypothesis, name, layer, case, self._done.values())
        if found is not None and made_by_another_version(found):
            found = None  # a record that says another sinkbench made it is not reused, whatever its key (issue 31)
        if found is not None:
            self.config.sinkbench_records.append(found)
            self.config.sinkbench_resumed = getattr(self.config, "sinkbench_resumed", 0) + 1
            pytest.skip(f"--resume: already in {self.results_path}")
        why = why_recomputed(self, hypothesis, name, layer, case, self._done.values())
        if why:
            self.note(f"--resume: {why}")

    def note(self, msg: str) -> None:
        """A line the user must see even with -q (not with -qq), once per session."""
        seen = self.__dict__.setdefault("_notes", set())
        if msg in seen or self.config.option.verbose < -1:
            return
        seen.add(msg)
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        capman = self.config.pluginmanager.get_plugin("capturemanager")
        if tr is None:
            return
        if capman is None:
            tr.write_line(f"[sinkbench] {msg}", yellow=True)
            return
        with capman.global_and_fixture_disabled():
            tr.ensure_newline()
            tr.write_line(f"[sinkbench] {msg}", yellow=True)
            tr.flush()

    def record(self, hypothesis: str, name: str, layer, params: dict, passed: bool, metrics: dict, **extra) -> dict:
        case = {k: v for k, v in extra.items() if k in ("claim", "condition", "target", "variant")}
        if params.get("k") is not None:
            case["k"] = params["k"]
        identity = self.unit_identity(hypothesis, name)
        params = dict(params)
        params.setdefault("units", self.of(name).units)  # the unit of replication the case used
        for unit in identity["units"]:  # a unit's settings are its criterion's: in params (the report's criterion column)
            for k, v in unit["settings"].items():
                params.setdefault(k, v)
        rec = results.make_record(hypothesis, self.subject(name), layer, params, passed, metrics,
                                  case_key=self.case_key(hypothesis, name, layer, **case), **extra)
        rec["unit"] = {k: v for k, v in identity["units"][0].items() if k != "settings"} if len(identity["units"]) == 1 else \
            [{k: v for k, v in u.items() if k != "settings"} for u in identity["units"]]
        if name in self.config.sinkbench_families:
            rec["family"] = self.config.sinkbench_families[name]
        rec.update(self.step_fields(name))
        try:
            results.append_jsonl(self.results_path, rec)
        except SinkbenchError as exc:  # e.g. the results folder became read-only: one line, not a traceback
            fail(exc)
        self.config.sinkbench_records.append(rec)
        return rec
