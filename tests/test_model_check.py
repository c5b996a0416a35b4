"""A model that computes wrong vectors in this process is an error, not a silently useless index.

CTranslate2 under a W^X memory policy (systemd ``MemoryDenyWriteExecute=``, which is prctl
``PR_SET_MDWE``) raises nothing and returns vectors that differ on every call. The daemon is run
here under that very policy (set by a wrapper that then execs ``semdexd run``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from semdexd.embed.encoder import Encoder, check_output
from semdexd.embed.model import ModelInfo
from semdexd.api.rpc import call_json
from tests.support import wait_for
from tests.test_daemon import DaemonProcess

PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, NO_MDWE = 65, 1, 77
UNDER_MDWE = ("import ctypes, os, sys\n"
              f"if ctypes.CDLL(None).prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) != 0:\n"
              f"    sys.exit({NO_MDWE})\n"
              "os.execv(sys.argv[1], sys.argv[1:])\n")


def test_the_bundled_model_passes_its_check(model_info: ModelInfo) -> None:
    check_output(Encoder(model_info))


def test_a_daemon_whose_model_computes_wrong_vectors_says_why(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path, model={})  # the bundled model
    proc = daemon.run(prefix=[sys.executable, "-c", UNDER_MDWE])
    try:
        if _exited_soon(proc) and proc.returncode == NO_MDWE:
            pytest.skip("this kernel has no prctl PR_SET_MDWE (Linux >= 6.3)")
        daemon.wait_ready()
        status = wait_for(lambda: (s := call_json(daemon.socket, "status", timeout=10.0))["state"] == "error" and s,
                          120, "the daemon to report its model error")
        # The wrong vectors are random: different on two runs, or NaN; either way the same advice.
        assert status["error"].startswith("ModelError: model all-MiniLM-L6-v2")
        assert "MemoryDenyWriteExecute" in status["error"]
        assert daemon.answers()  # it stays up to say so
    finally:
        daemon.cleanup()


def _exited_soon(proc: subprocess.Popen[bytes]) -> bool:
    try:
        proc.wait(timeout=0.5)
    except subprocess.TimeoutExpired:
        return False
    return True
