"""--remote with NDIF out of reach (issue 31, helper D item 3): one request with short
timeouts and no retries finds it, and the run stops at start-up in one line (it used to
wait through 141 s of huggingface_hub retries, then fail inside its first test). No test
here needs the network: the requests are monkeypatched, or go to a refused local port."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sinkbench.errors import SinkbenchError
from sinkbench.model import remote

ROOT = Path(__file__).resolve().parent.parent
SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    monkeypatch.setattr(remote, "_NDIF_UNREACHABLE", {})


def test_an_unreachable_ndif_is_one_line_from_one_request(monkeypatch):
    calls = []

    def refused(url, timeout):
        calls.append((url, timeout))
        raise httpx.ConnectError("[Errno -2] Name or service not known")

    monkeypatch.setattr(httpx, "get", refused)
    problem = remote.ndif_problem("https://ndif.example")
    assert problem == ("--remote: NDIF (https://ndif.example) cannot be reached: ConnectError: [Errno -2] Name or service "
                       "not known; check the network (and NDIF_HOST), or drop --remote to run the model locally")
    assert remote.ndif_problem("https://ndif.example") == problem  # asked once per session
    assert len(calls) == 1 and calls[0][1].connect <= 5 and calls[0][1].read <= 10


def test_any_http_answer_means_ndif_is_there(monkeypatch):
    monkeypatch.setattr(httpx, "get", lambda url, timeout: httpx.Response(404))
    assert remote.ndif_problem("https://ndif.example") is None


def test_preflight_stops_a_remote_run_at_start_up(monkeypatch):
    """The start-up checks of a --remote model give the one line, before any config is read."""
    from sinkbench.measure.config import Settings
    from sinkbench.run import preflight

    monkeypatch.setenv("NDIF_API_KEY", "k")
    monkeypatch.setattr(httpx, "get", lambda url, timeout: (_ for _ in ()).throw(httpx.ConnectTimeout("timed out")))
    monkeypatch.setattr(preflight, "model_config", lambda *a: pytest.fail("read the config although NDIF is unreachable"))
    problems = preflight.model_problems("meta-llama/Llama-3.1-8B", Settings(remote=True), "", True)
    assert len(problems) == 1 and problems[0].startswith("--remote: NDIF (") and "ConnectTimeout: timed out" in problems[0]


def test_a_network_failure_while_loading_is_one_line(monkeypatch):
    """NDIF or the hub gone between start-up and the first test: one line, not a traceback."""
    def gone(*a, **k):
        raise httpx.ConnectError("[Errno 101] Network is unreachable")

    monkeypatch.setattr(remote, "remote_subject", gone)
    with pytest.raises(SinkbenchError, match=r"^--remote --model org/m: a request to NDIF or the hub failed while loading "
                                             r"\(ConnectError: \[Errno 101\] Network is unreachable\)") as e:
        remote.load_remote_subject("org/m")
    assert "\n" not in str(e.value)


def test_a_bug_while_loading_keeps_its_traceback(monkeypatch):
    monkeypatch.setattr(remote, "remote_subject", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        remote.load_remote_subject("org/m")


def test_a_remote_run_with_no_network_ends_at_start_up_in_seconds(tmp_path):
    """End to end: the model is in huggingface_hub's cache, the hub and NDIF are refused local
    ports (as with no network). One line, exit 4, no retry, in seconds (was 141 s, then a
    traceback in the first test)."""
    snap = tmp_path / "hf" / "hub" / "models--some-org--tiny" / "snapshots" / SHA
    shutil.copytree(ROOT / "fixtures" / "zoo" / "tiny-bb-bos", snap)
    (snap.parent.parent / "refs").mkdir()
    (snap.parent.parent / "refs" / "main").write_text(SHA)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": "http://127.0.0.1:9", "NDIF_HOST": "http://127.0.0.1:9",
           "NDIF_API_KEY": "k", "SINKBENCH_CACHE": str(tmp_path / "cache")}
    env.pop("HF_HUB_OFFLINE", None)
    cmd = [sys.executable, "-m", "pytest", "hypotheses/test_dark_tail_necessary.py", "-p", "no:cacheprovider",
           "--results", str(tmp_path / "results"), "--model", "some-org/tiny", "--seq-len", "64", "--remote", "-q"]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    seconds, out = time.perf_counter() - t0, p.stdout + p.stderr
    lines = [line for line in out.splitlines() if line.strip()]
    assert p.returncode == 4 and len(lines) == 1, out
    assert lines[0].startswith("ERROR: --remote: NDIF (http://127.0.0.1:9) cannot be reached: ConnectError"), lines
    assert "Retry" not in out and seconds < 30, (seconds, out)
