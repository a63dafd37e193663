"""Issue 31's faults, re-checked end to end as an outside tester would (helper G's battery).

For each fault of issue 31 ("Faults and bad inputs" 1-15 and the four minor ones) this sets
the fault up in a temporary folder, runs the product the way the README says users run it
(`pytest hypotheses ...`, `python -m sinkbench run/report/expect/compare`) on the zoo model
tiny-bb-bos (`--seq-len 64`, few windows), and prints one row per check:

    id | expected | observed (exit code, traceback?, first error line, what survived) | OK / NOT OK

A traceback is "Traceback (most recent call last)" or an INTERNALERROR anywhere in stdout or
stderr. Faults that need a kill or a full disk mid-run are made for real: `kill -9` of the
process group once checkpoints appear (as tests/test_resume.py does), and a small tmpfs that
is filled up or remounted read-only mid-run (needs root and `mount`; where it cannot be
mounted the row says so and is NOT OK). Helpers are tests/test_faults.py's (zoo_copy,
_truncate, GOOD).

    flock /tmp/sinkbench-heavy.lock nice -n 10 .venv/bin/python benchmarks/fault_battery.py [--only 3,7] [--keep]

Exit 0 when every row is OK, 1 otherwise. About 5-8 minutes on two cores."""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.test_faults import GOOD, _truncate, zoo_copy  # noqa: E402  (the fault tests' own helpers)

PY = sys.executable
MODEL = ["--model", "tiny-bb-bos", "--seq-len", "64", "--n-seqs", "8"]
H1 = ["-k", "dark_tail"]
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|INTERNALERROR")


@dataclass
class Run:
    code: int
    out: str
    seconds: float

    @property
    def traceback(self) -> bool:
        return bool(TRACEBACK.search(self.out))

    def first_error(self) -> str:
        """The first line that reports a problem (ERROR, a --option's line, a command's error:,
        a [sinkbench] warning), else the first line that is not pytest's banner."""
        lines = self.error_lines()
        pattern = re.compile(r"^(ERROR|E\s|--[a-z]|error:|sinkbench \w+: error|\[sinkbench\] (warning|note|--resume))")
        return next((l.strip() for l in lines if pattern.match(l.strip())), lines[0].strip() if lines else "")

    def error_lines(self) -> list[str]:
        """The output's lines, less pytest's own banner (a check that needs -k's selection runs
        after collection, under pytest's header) and transformers' notices."""
        banner = re.compile(r"^(=+ .* =+|=+|platform |benchmark: |rootdir: |configfile: |plugins: |collected |cachedir: |"
                            r"\[transformers\] )")
        return [l for l in self.out.splitlines() if l.strip() and not banner.match(l)]


@dataclass
class Row:
    fid: str
    expected: str
    observed: str
    ok: bool


class Battery:
    def __init__(self, base: Path):
        self.base = base
        self.rows: list[Row] = []
        self._ref: Path | None = None

    # ---------------------------------------------------------------- running the product
    def env(self, cache: Path | None = None, **extra) -> dict:
        env = {**os.environ, "SINKBENCH_CACHE": str(cache or self.base / "cache"), "PYTHONUNBUFFERED": "1", **extra}
        return env

    def pytest(self, results: Path | str, *args, cwd=ROOT, env=None, timeout=600) -> Run:
        cmd = [PY, "-m", "pytest", "hypotheses", "-p", "no:cacheprovider", "--results", str(results), *args]
        return self._run(cmd, cwd, env, timeout)

    def sinkbench(self, *args, cwd=ROOT, env=None, timeout=600) -> Run:
        return self._run([PY, "-m", "sinkbench", *args], cwd, env, timeout)

    def _run(self, cmd, cwd, env, timeout) -> Run:
        t0 = time.perf_counter()
        p = subprocess.run(cmd, cwd=cwd, capture_output=True, timeout=timeout, env=env or self.env())
        out = (p.stdout + p.stderr).decode("utf-8", "replace")
        self.log(cmd, out)
        return Run(p.returncode, out, time.perf_counter() - t0)

    def log(self, cmd, out: str) -> None:
        """Every run's command and output under BASE/logs (kept with --keep)."""
        logs = self.folder("logs")
        n = len(list(logs.iterdir())) + 1
        (logs / f"{n:03d}.txt").write_bytes((" ".join(map(str, cmd)) + "\n\n" + out).encode("utf-8", "surrogateescape"))

    def background(self, results: Path, *args, env=None) -> subprocess.Popen:
        cmd = [PY, "-m", "pytest", "hypotheses", "-p", "no:cacheprovider", "--results", str(results), *args]
        logs = self.folder("logs")
        out = open(logs / f"{len(list(logs.iterdir())) + 1:03d}-background.txt", "wb")  # a file: a pipe could fill and stall it
        out.write((" ".join(cmd) + "\n\n").encode("utf-8", "surrogateescape"))
        out.flush()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env or self.env(),
                                start_new_session=True)
        proc.output_file = out
        return proc

    @staticmethod
    def output(proc: subprocess.Popen, timeout: float = 600) -> str:
        """Wait for a background run and return its output (after the command line)."""
        proc.wait(timeout=timeout)
        proc.output_file.close()
        return Path(proc.output_file.name).read_text(errors="replace").split("\n\n", 1)[-1]

    def folder(self, name: str) -> Path:
        d = self.base / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    def reference(self) -> Path:
        """One finished H1 + H2 run of tiny-bb-bos: the records other checks start from."""
        if self._ref is None:
            self._ref = self.base / "ref"
            r = self.pytest(self._ref, *MODEL, "-k", "dark_tail or middle_dispensable")
            assert r.code in (0, 1) and (self._ref / "results.jsonl").exists(), r.out[-3000:]
        return self._ref

    # ---------------------------------------------------------------- judging
    def add(self, fid: str, expected: str, observed: str, ok: bool) -> None:
        row = Row(fid, expected, observed, ok)
        self.rows.append(row)
        print(f"{fid:<5} | {expected} | {observed} | {'OK' if ok else 'NOT OK'}", flush=True)

    def exit4(self, fid: str, r: Run, names: str, what: str = "") -> None:
        """Start-up refusal: exit 4, no traceback, one line, which names the problem."""
        lines = r.error_lines()
        first = lines[0] if lines else ""
        ok = r.code == 4 and not r.traceback and len(lines) == 1 and re.search(names, first) is not None
        self.add(fid, f"exit 4 at start-up, one line naming {what or names!r}",
                 f"exit {r.code}, traceback {'yes' if r.traceback else 'no'}, {len(lines)} line(s): {first[:150]!r}", ok)

    def one_line(self, fid: str, r: Run, names: str, codes: tuple, what: str) -> None:
        """A reader's (report/compare/expect) error: the given exit code, no traceback, naming the problem."""
        first = r.first_error()
        named = re.search(names, r.out) is not None
        ok = r.code in codes and not r.traceback and named
        self.add(fid, f"exit {'/'.join(map(str, codes))}, no traceback, names {what}",
                 f"exit {r.code}, traceback {'yes' if r.traceback else 'no'}, {'named' if named else 'NOT named'}: "
                 f"{first[:150]!r}", ok)


def records(path: Path) -> list[dict]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append({"unreadable": line[:40]})
    return out


def strip_time(recs: list[dict]) -> dict:
    return {r["case_key"]: {k: v for k, v in r.items() if k != "time"} for r in recs if "case_key" in r}


def checkpoints(results: Path) -> list[Path]:
    return sorted((results / "checkpoints").rglob("*.pt")) if (results / "checkpoints").exists() else []


def kill_when(proc: subprocess.Popen, cond, timeout=300) -> bool:
    """kill -9 the run's process group as soon as cond() holds; False when the run ended first."""
    deadline = time.monotonic() + timeout
    try:
        while not cond():
            if proc.poll() is not None or time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class Tmpfs:
    """A small tmpfs for a results folder: a disk that can fill up or turn read-only mid-run."""

    def __init__(self, path: Path, size: str = "8m"):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True)
        self.ok = p.returncode == 0
        self.why = p.stderr.strip()

    def fill(self) -> None:
        subprocess.run(["dd", "if=/dev/zero", f"of={self.path / 'filler'}", "bs=64k"], capture_output=True)

    def unfill(self) -> None:
        (self.path / "filler").unlink(missing_ok=True)

    def read_only(self, ro: bool = True) -> None:
        subprocess.run(["mount", "-o", f"remount,{'ro' if ro else 'rw'}", str(self.path)], check=True)

    def copy_out(self, dest: Path) -> None:
        shutil.copytree(self.path, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("filler"))

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


# ==================================================================== the faults
def f1_models_file(b: Battery) -> None:
    ref = b.reference()
    for tag, text, names in [
        ("1a", b'[[models]]\nname = "tiny-bb-bos"\nseq_len = 64\n', r"\[\[models\]\]"),
        ("1b", b"", r"no \[\[model\]\]"),
        ("1c", b'seq_len = 64\n[[model]]\nname = "tiny-bb-bos"\n', r"outside any \[\[model\]\]"),
    ]:
        d = b.folder(f"f{tag}")
        f = d / "models.toml"
        f.write_bytes(text)
        r = b.pytest(d / "results", "--models-file", str(f), "--n-seqs", "8", "--expect", str(ref))
        b.exit4(tag, r, names)


def f2_expect_nothing_shared(b: Battery) -> None:
    ref = b.reference()
    d = b.folder("f2")
    old = d / "old"
    old.mkdir()
    with open(old / "results.jsonl", "w") as fh:
        for r in records(ref / "results.jsonl"):
            fh.write(json.dumps({**r, "model": "another-model"}) + "\n")
    r = b.pytest(d / "results", *MODEL, *H1, "--expect", str(old))
    named = "no case of this run has an expectation" in r.out
    b.add("2a", "non-zero exit, says no case has an expectation",
          f"exit {r.code}, traceback {'yes' if r.traceback else 'no'}, {'said' if named else 'NOT said'}",
          r.code not in (0,) and named and not r.traceback)
    for tag, tol in (("2b", "inf"), ("2c", "nan")):
        r = b.pytest(d / f"results-{tag}", *MODEL, *H1, "--expect", str(ref), "--expect-tolerance", tol)
        b.exit4(tag, r, r"--expect-tolerance", f"--expect-tolerance {tol}")


def f3_full_disk(b: Battery) -> None:
    d = b.folder("f3")
    fs = Tmpfs(d / "disk", "16m")
    if not fs.ok:
        b.add("3", "full disk: one line, non-zero, passes kept", f"cannot mount a tmpfs ({fs.why})", False)
        return
    try:
        res = fs.path / "results"
        args = (*MODEL[:-1], "32", "--batch-size", "4", *H1)
        proc = b.background(res, *args)
        deadline = time.monotonic() + 300
        # whole passes, not files: a pass saved whole replaces its batch parts (3 parts can become 1 pass)
        whole = lambda: [p for p in checkpoints(res) if p.name.startswith("pass")]  # noqa: E731
        while len(whole()) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        fs.fill()
        out = b.output(proc)
        r = Run(proc.returncode, out, 0)
        kept = whole()
        names = re.search(r"No space left on device", out) is not None
        fs.unfill()
        again = b.pytest(res, *args, "--resume")
        m = re.search(r"(\d+) passes read back from checkpoints", again.out)
        back = int(m.group(1)) if m else 0
        recs = records(res / "results.jsonl") if (res / "results.jsonl").exists() else []
        ok = (r.code not in (0, 4) and not r.traceback and names and len(kept) >= 3 and back >= 3
              and again.code in (0, 1) and not again.traceback and len(recs) == 1)
        b.add("3", "full disk mid-grid: one line, non-zero; saved passes kept; --resume reads them back",
              f"exit {r.code}, traceback {'yes' if r.traceback else 'no'}, ENOSPC {'named' if names else 'NOT named'}, "
              f"{len(kept)} passes kept; resume exit {again.code}, {back} read back, {len(recs)} record(s)", ok)
    finally:
        fs.close()


def f4_torn_tail(b: Battery) -> None:
    ref = b.reference()
    for tag, tail in (("4a", b'{"hypothesis": "H1", "mo'), ("4b", b"\0" * 40)):
        d = b.folder(f"f{tag}")
        res = d / "results"
        res.mkdir()
        h1 = [r for r in records(ref / "results.jsonl") if r["hypothesis"] == "H1"]
        (res / "results.jsonl").write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in h1) + tail)
        r = b.pytest(res, *MODEL, "-k", "dark_tail or middle_dispensable_absolute", "--resume")
        recs = records(res / "results.jsonl")
        readable = all("unreadable" not in x for x in recs)
        warned = re.search(r"results\.jsonl: line \d+", r.out) is not None
        ok = r.code in (0, 1) and not r.traceback and readable and len(recs) == len(h1) + 1 and warned
        b.add(tag, "--resume on a torn tail: tail named and moved aside, new record readable",
              f"exit {r.code}, traceback {'yes' if r.traceback else 'no'}, tail {'named' if warned else 'NOT named'}, "
              f"{len(recs)} lines, {'all readable' if readable else 'UNREADABLE line'}", ok)
    # the readers on a torn file, left unrepaired
    d = b.folder("f4-readers")
    torn = d / "torn"
    torn.mkdir()
    (torn / "results.jsonl").write_bytes((ref / "results.jsonl").read_bytes() + b'{"hypothesis": "H1", "mo')
    n = len(records(ref / "results.jsonl")) + 1
    names = rf"results\.jsonl: line {n}: a torn last line"
    b.one_line("4c", b.sinkbench("report", str(torn), "--out", str(d / "site")), names, (2,), "file and line (report)")
    b.one_line("4d", b.sinkbench("compare", str(ref), str(torn)), names, (2,), "file and line (compare)")
    r = b.sinkbench("expect", str(torn))
    b.one_line("4e", r, names, (2,), "file and line (expect)")
    r = b.pytest(d / "results", *MODEL, *H1, "--expect", str(torn))
    b.exit4("4f", r, names, "the torn expectation's file and line (--expect)")


def f5_h2a_resume(b: Battery) -> None:
    d = b.folder("f5")
    res = d / "results"
    shutil.copytree(b.reference(), res, ignore=shutil.ignore_patterns("checkpoints"))
    before = records(res / "results.jsonl")
    r = b.pytest(res, *MODEL, "-k", "middle_dispensable", "--resume")
    after = records(res / "results.jsonl")
    h2 = [x for x in before if x["hypothesis"] == "H2"]
    ok = r.code in (0, 1) and len(after) == len(before) and not r.traceback and "measuring the grid" not in r.out
    b.add("5", f"--resume after a finished H2 run: all {len(h2)} H2 cases skipped, nothing re-measured",
          f"exit {r.code}, {len(after) - len(before)} records added, "
          f"{'grid re-measured' if 'measuring the grid' in r.out else 'no grid measured'}", ok)


def f6_foreign_version(b: Battery) -> None:
    """6a: records made by a run of sinkbench 0.0.1 (its __version__ patched by a plugin, so its
    case keys are that version's), verdicts flipped; 6b: this version's records with only their
    `versions` field saying 0.0.1; 6c: --baseline of the 6a records."""
    d = b.folder("f6")
    plug = b.folder("f6/plugin")
    (plug / "sb_old_version.py").write_text("import sinkbench\nsinkbench.__version__ = '0.0.1'\n")
    made = d / "made"
    b.pytest(made, *MODEL, *H1, "-p", "sb_old_version", env=b.env(PYTHONPATH=str(plug)))
    genuine = records(made / "results.jsonl")
    forged_field = []
    for r in records(b.reference() / "results.jsonl"):
        if r["hypothesis"] == "H1":
            r = json.loads(json.dumps(r))
            r["versions"]["sinkbench"] = "0.0.1"
            forged_field.append(r)
    for tag, old in (("6a", genuine), ("6b", forged_field)):
        res = d / f"results-{tag}"
        res.mkdir()
        flipped = [{**r, "verdict": "pass" if r["verdict"] != "pass" else "fail"} for r in old]
        (res / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in flipped))
        r = b.pytest(res, *MODEL, *H1, "--resume")
        after = records(res / "results.jsonl")
        said = re.search(r"--resume:.*made by sinkbench 0\.0\.1", r.out) is not None
        versions = {x.get("versions", {}).get("sinkbench") for x in old}
        ok = r.code in (0, 1) and len(old) > 0 and len(after) == 2 * len(old) and said and not r.traceback
        b.add(tag, "--resume over a record of sinkbench 0.0.1 (verdict flipped): recomputed, and said",
              f"{len(old)} old record(s) of {sorted(map(str, versions))}; exit {r.code}, {len(after) - len(old)} "
              f"recomputed, {'said' if said else 'NOT said'}", ok)
    old = d / "old"
    old.mkdir()
    (old / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in genuine))
    r = b.pytest(d / "results-6c", *MODEL, *H1, "--baseline", str(old))
    said = re.search(r"sinkbench( version)? 0\.0\.1", r.out) is not None
    b.add("6c", "--baseline made by sinkbench 0.0.1: says so, not compared as the model's change",
          f"exit {r.code}, traceback {'yes' if r.traceback else 'no'}, {'said' if said else 'NOT said'}",
          said and not r.traceback and r.code not in (3, 4))


def f7_f15_kill_then_resume(b: Battery) -> None:
    """kill -9 mid-grid once 3 whole passes and 2 batches of the next are saved; one pass checkpoint's bit flipped (7);
    resumed with another --batch-size and thread count (15): records equal an uninterrupted
    run's, every intact saved pass read back, the flipped one named and redone, no checkpoint
    left behind by the finished run (15b: the batch parts of the pass in flight included)."""
    d = b.folder("f7")
    args = ["--model", "tiny-bb-bos", "--seq-len", "64", "--n-seqs", "32", "--batch-size", "4", *H1]
    ref = d / "reference"
    done = b.pytest(ref, *args)
    killed = d / "killed"
    proc = b.background(killed, *args)
    whole = lambda: [p for p in checkpoints(killed) if p.name.startswith("pass")]
    in_flight = lambda: len(checkpoints(killed)) - len(whole())  # batch parts of the pass being run
    if not kill_when(proc, lambda: len(whole()) >= 3 and in_flight() >= 2):
        b.add("7", "kill -9 mid-grid", "the run ended before 3 whole passes and 2 batch parts were saved", False)
        return
    saved, passes = checkpoints(killed), whole()
    parts = [p for p in saved if p not in passes]
    victim = passes[0]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    env = b.env(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    r = b.pytest(killed, *args[:-4], "--batch-size", "8", *H1, "--resume", env=env)
    m = re.search(r"(\d+) passes read back from checkpoints", r.out)
    back = int(m.group(1)) if m else 0
    redone = re.search(rf"checkpoint {re.escape(str(victim))}.*running its pass again", r.out) is not None
    same = strip_time(records(killed / "results.jsonl")) == strip_time(records(ref / "results.jsonl"))
    left = checkpoints(killed)
    b.add("7", "a flipped bit in a checkpoint: named, its pass redone, records identical",
          f"exit {r.code} (ref {done.code}), flipped checkpoint {'named+redone' if redone else 'NOT named'}, "
          f"records {'identical' if same else 'DIFFER'}", redone and same and not r.traceback)
    b.add("15", "resume with --batch-size 8 and 1 thread: every intact saved pass read back",
          f"{len(passes)} whole passes saved (1 flipped), {back} read back", back >= len(passes) - 1 and same)
    stale = [p.name.split("-")[0] for p in left]
    b.add("15b", "no checkpoint left once the finished run wrote its records",
          f"{len(parts)} batch part(s) of the pass in flight saved (batch size 4); after the run: {len(left)} left "
          f"({', '.join(sorted(set(stale))) or 'none'})", not left)


def f8_bad_lines(b: Battery) -> None:
    ref = b.reference()
    good = (ref / "results.jsonl").read_bytes()
    n = good.count(b"\n")
    for tag, bad, why in (("8a", b'{"hypothesis": "H\xe9"}\n', "not UTF-8"), ("8b", b"[1, 2]\n", "a JSON list")):
        d = b.folder(f"f{tag}")
        res = d / "bad"
        res.mkdir()
        (res / "results.jsonl").write_bytes(good + bad)
        names = rf"results\.jsonl: line {n + 1}: {re.escape(why)}"
        b.one_line(f"{tag}-report", b.sinkbench("report", str(res), "--out", str(d / "site")), names, (2,), "file+line")
        b.one_line(f"{tag}-cmp", b.sinkbench("compare", str(ref), str(res)), names, (2,), "file+line")
        b.one_line(f"{tag}-exp", b.sinkbench("expect", str(res)), names, (2,), "file+line")
        b.exit4(f"{tag}-ex", b.pytest(d / "r1", *MODEL, *H1, "--expect", str(res)), names, "file+line (--expect)")
        b.exit4(f"{tag}-bl", b.pytest(d / "r2", *MODEL, *H1, "--baseline", str(res)), names, "file+line (--baseline)")
        r = b.pytest(res, *MODEL, *H1, "--resume")
        errors = re.search(r"\d+ error", r.out.splitlines()[-1] if r.out.strip() else "") is not None
        warned = re.search(names, r.out) is not None
        b.add(f"{tag}-res", "--resume: the line named once, the rest resumed, no test errors",
              f"exit {r.code}, traceback {'yes' if r.traceback else 'no'}, {'named' if warned else 'NOT named'}, "
              f"{'test ERRORS' if errors else 'no test errors'}", r.code in (0, 1) and warned and not errors and not r.traceback)


def f9_half_copied(b: Battery) -> None:
    d = b.folder("f9")
    m = zoo_copy(d)
    _truncate(m / "model.safetensors", 0.7)
    r = b.pytest(d / "results", "--model", str(m), "--seq-len", "64", "--n-seqs", "8", *H1)
    b.exit4("9", r, r"damaged weights: .*model\.safetensors", "damaged weights and the file")


def f10_spectrum_cache(b: Battery) -> None:
    d = b.folder("f10")
    cache = d / "cache"
    env = b.env(cache)
    first = b.pytest(d / "r1", *MODEL, *H1, env=env)
    files = sorted((cache / "spectra").glob("*")) if (cache / "spectra").exists() else []
    if not files:
        b.add("10", "damaged spectrum cache rebuilt", f"no spectrum cache file under {cache} (exit {first.code})", False)
        return
    for f in files:
        _truncate(f, 0.5)
    r = b.pytest(d / "r2", *MODEL, *H1, env=env)
    warned = re.search(r"spectrum cache .*rebuilding it", r.out) is not None
    same = [{k: v for k, v in x.items() if k != "time"} for x in records(d / "r1" / "results.jsonl")] == \
           [{k: v for k, v in x.items() if k != "time"} for x in records(d / "r2" / "results.jsonl")]
    third = b.pytest(d / "r3", *MODEL, *H1, env=env)
    clean = "spectrum cache" not in third.out
    b.add("10", "damaged spectrum cache: named, rebuilt, same records; the next run reads it silently",
          f"exit {r.code}, {'named+rebuilt' if warned else 'NOT named'}, records {'same' if same else 'DIFFER'}, "
          f"next run {'clean' if clean else 'warns again'}", warned and same and clean and not r.traceback)


def f11_read_only(b: Battery) -> None:
    d = b.folder("f11")
    fs = Tmpfs(d / "disk", "16m")
    if not fs.ok:
        b.add("11", "read-only results mid-run", f"cannot mount a tmpfs ({fs.why})", False)
        return
    try:
        res = fs.path / "results"
        proc = b.background(res, *MODEL, "-k", "dark_tail or middle_dispensable")
        deadline = time.monotonic() + 300
        while not ((res / "results.jsonl").exists() and (res / "results.jsonl").stat().st_size > 0):
            if proc.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        fs.read_only()
        out = b.output(proc)
        r = Run(proc.returncode, out, 0)
        named = re.search(r"cannot write results\.jsonl \(Read-only file system\)", out) is not None
        matrix = "hypotheses x models" in out
        kept = sum(1 for _ in open(res / "results.jsonl"))
        b.add("11", "results turn read-only mid-run: one line, non-zero, failure reasons and matrix printed",
              f"exit {r.code}, traceback {'yes' if r.traceback else 'no'}, {'named' if named else 'NOT named'}, "
              f"matrix {'printed' if matrix else 'NOT printed'}, {kept} record(s) kept",
              r.code not in (0, 3, 4) and named and matrix and not r.traceback and kept >= 1)
    finally:
        try:
            fs.read_only(False)
        except subprocess.CalledProcessError:
            pass
        fs.close()


def f12_startup_internalerrors(b: Battery) -> None:
    d = b.folder("f12")
    f = d / "models.toml"
    f.write_bytes(b'[[model]]\nname = "caf\xe9"\n')
    b.exit4("12a", b.pytest(d / "r", "--models-file", str(f)), r"not UTF-8 \(byte 0xe9", "the models file's byte")
    job = b.folder("f12/job")
    (job / "pyproject.toml").write_text('[tool.sinkbench]\nseq_len = = 64\n')
    r = b.sinkbench("run", *MODEL, *H1, "--results", str(job / "results"), cwd=job)
    b.exit4("12b", r, r"pyproject\.toml", "pyproject.toml is not valid TOML")


def f13_h7_window(b: Battery) -> None:
    d = b.folder("f13")
    r = b.pytest(d / "r1", "--model", "tiny-bb-bos", "--seq-len", "16", "--n-seqs", "8", "-k", "streaming")
    b.exit4("13a", r, r"--seq-len 16", "--seq-len (not h7_window)")
    job = b.folder("f13/job")
    (job / "pyproject.toml").write_text("[tool.sinkbench]\nh7_window = 100\n")  # W <= seq_len - 2 = 62
    r = b.sinkbench("run", *MODEL, "-k", "streaming", "--results", str(job / "results"), cwd=job)
    b.exit4("13b", r, r"h7_window 100", "h7_window 100")


def f14_report_crashes(b: Battery) -> None:
    d = b.folder("f14")
    f = d / "models.toml"
    f.write_text('[[model]]\nname = "tiny-bb-bos"\nseq_len = 64\nfamily = 3\n')
    b.exit4("14a", b.pytest(d / "r", "--models-file", str(f), "--n-seqs", "8", *H1), r"family", "family = 3")
    out_file = d / "afile"
    out_file.write_text("x")
    b.one_line("14b", b.sinkbench("report", str(b.reference()), "--out", str(out_file)), r"--out", (2,), "--out naming a file")
    raw = os.fsencode(str(d)) + b"/r\xe9sults"
    r = b.pytest(os.fsdecode(raw), *MODEL, *H1)
    rr = b.sinkbench("report", os.fsdecode(raw))
    written = os.path.exists(raw + b"/report.html")
    b.add("14c", "a non-UTF-8 results path: run and report work (or one line)",
          f"run exit {r.code} tb {'yes' if r.traceback else 'no'}; report exit {rr.code} tb "
          f"{'yes' if rr.traceback else 'no'}, report.html {'written' if written else 'NOT written'}: {rr.first_error()[:100]!r}",
          r.code in (0, 1) and not r.traceback and not rr.traceback and (written or rr.code == 2))


def minor(b: Battery) -> None:
    d = b.folder("minor")
    env = b.env(HF_HUB_OFFLINE="0")
    r = b.pytest(d / "m1", "--model", "no-such-org/no-such-model", "--seq-len", "64", "--n-seqs", "8", *H1, env=env, timeout=300)
    b.exit4("m1", r, r"no-such-org/no-such-model", f"the hub id, in one line ({r.seconds:.0f} s)")
    env = b.env(HF_HUB_OFFLINE="1")
    r = b.pytest(d / "m1b", "--model", "no-such-org/no-such-model", "--seq-len", "64", "--n-seqs", "8", *H1, env=env, timeout=300)
    b.exit4("m1b", r, r"no-such-org/no-such-model", f"the hub id, offline ({r.seconds:.0f} s)")
    ds = d / "text.jsonl"
    ds.write_bytes(b"\xef\xbb\xbf" + b"".join(json.dumps({"text": "def f(x):\n    return x + 1\n" * 40}).encode() + b"\n"
                                            for _ in range(50)))
    b.exit4("m2", b.pytest(d / "m2", *MODEL, *H1, "--dataset", str(ds)), r"byte-order mark", "the BOM")
    res = d / "m2b"
    res.mkdir()
    (res / "results.jsonl").write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    b.one_line("m2b", b.sinkbench("report", str(res)), r"byte-order mark", (2,), "the BOM in results.jsonl")
    raw = os.fsencode(str(d)) + b"/caf\xe9-model"
    shutil.copytree(os.fsencode(str(ROOT / "fixtures" / "zoo" / "tiny-bb-bos")), raw)
    r = b.pytest(d / "m3", "--model", os.fsdecode(raw), "--seq-len", "64", "--n-seqs", "8", *H1)
    b.exit4("m3", r, r"path is not valid UTF-8", "the path is not UTF-8")
    f = d / "models.toml"
    f.write_text('[[model]]\nname = "tiny-bb-bos"\nseq_len = 64\n')
    r = b.pytest(d / "m4", "--models-file", str(f), *MODEL, *H1)
    n = len(records(d / "m4" / "results.jsonl")) if (d / "m4" / "results.jsonl").exists() else 0
    ran = len(re.findall(r"test_dark_tail_necessary\[[^\]]*\]", r.out.split("short test summary")[-1]))
    b.add("m4", "a model in the file and on the command line: runs once (or one line, exit 4)",
          f"exit {r.code}, {n} record(s), {ran} H1 case(s) in the summary: {r.first_error()[:100]!r}",
          not r.traceback and ((r.code in (0, 1) and n == 1) or (r.code == 4 and n == 0)))


def w5_forward_fails(b: Battery) -> None:
    """What to build 5: a model whose own forward fails at load (here: an activation transformers
    does not know, and a head count that does not divide the width) is one line naming it."""
    for tag, change in (("w5a", {"hidden_act": "no_such_activation"}), ("w5b", {"num_attention_heads": 5})):
        d = b.folder(f"{tag}")
        m = zoo_copy(d)
        cfg = json.loads((m / "config.json").read_text())
        cfg.update(change)
        (m / "config.json").write_text(json.dumps(cfg))
        r = b.pytest(d / "results", "--model", str(m), "--seq-len", "64", "--n-seqs", "8", *H1)
        lines = r.error_lines()
        named = any(str(m) in l for l in lines)
        ok = r.code in (1, 4) and not r.traceback and named and sum(l.startswith(("ERROR", "E ")) for l in lines) <= 2
        b.add(tag, f"a model whose forward fails ({', '.join(f'{k}={v}' for k, v in change.items())}): one line naming it",
              f"exit {r.code}, traceback {'yes' if r.traceback else 'no'}, {'named' if named else 'NOT named'}: "
              f"{r.first_error()[:150]!r}", ok)


FAULTS = {"1": f1_models_file, "2": f2_expect_nothing_shared, "3": f3_full_disk, "4": f4_torn_tail,
          "5": f5_h2a_resume, "6": f6_foreign_version, "7": f7_f15_kill_then_resume, "8": f8_bad_lines,
          "9": f9_half_copied, "10": f10_spectrum_cache, "11": f11_read_only, "12": f12_startup_internalerrors,
          "13": f13_h7_window, "14": f14_report_crashes, "m": minor, "w5": w5_forward_fails}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated fault ids (1-14, 15 is with 7, m = the minor ones, w5 = a forward that fails)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    a = ap.parse_args(argv)
    only = [x.strip() for x in a.only.split(",") if x.strip()]
    only = ["7" if x == "15" else x for x in only]
    base = Path(tempfile.mkdtemp(prefix="sinkbench-faults-"))
    b = Battery(base)
    t0 = time.perf_counter()
    print(f"{'id':<5} | expected | observed | verdict", flush=True)
    try:
        for fid, fn in FAULTS.items():
            if only and fid not in only:
                continue
            try:
                fn(b)
            except Exception as exc:  # a check that cannot run is a NOT OK row, not the end of the battery
                b.add(fid, "the check runs", f"the battery's check failed: {type(exc).__name__}: {str(exc)[:200]}", False)
    finally:
        if a.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    bad = [r.fid for r in b.rows if not r.ok]
    print(f"{len(b.rows) - len(bad)} of {len(b.rows)} OK in {time.perf_counter() - t0:.0f} s"
          + (f"; NOT OK: {', '.join(bad)}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
