"""A pytest plugin: one running app (``app.py`` in a subprocess) shared by the e2e and browser tests.

Load it with ``pytest_plugins = ["conftest_app"]`` in a test module. The app uses the real
checkpoints when both exist, otherwise the debug model (``AppServer.real`` says which); tests that
need real models skip themselves with a reason.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS = [ROOT / "checkpoints" / "lstm.safetensors", ROOT / "checkpoints" / "vae.safetensors"]
START_TIMEOUT = 180


@dataclass
class AppServer:
    url: str
    real: bool
    process: subprocess.Popen
    log: Path


def real_checkpoints() -> bool:
    return all(p.is_file() for p in CHECKPOINTS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def app_server(tmp_path_factory) -> AppServer:
    real = real_checkpoints() and os.environ.get("MUSICGEN_TEST_DEBUG_MODEL") != "1"
    port = free_port()
    log = tmp_path_factory.mktemp("app") / "app.log"
    env = dict(os.environ, PYTHONPATH=str(ROOT), GRADIO_ANALYTICS_ENABLED="False")
    env.pop("GRADIO_TEMP_DIR", None)
    env.pop("MUSICGEN_DEBUG_MODEL", None)
    cmd = [sys.executable, str(ROOT / "app.py"), "--host", "127.0.0.1", "--port", str(port)]
    if not real:
        cmd.append("--debug-model")
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"app.py exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url + "gradio_api/info", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"app.py did not answer within {START_TIMEOUT} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield AppServer(url, real, proc, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
