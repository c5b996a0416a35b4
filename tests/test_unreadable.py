"""An unreadable file (chmod 000) is skipped with its reason while the rest is indexed.

Tests run as root here, and root reads anything; so the daemon runs under `setpriv` without
capabilities, where mode 000 means unreadable for it too (as for any user).
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest

from tests.support import Instance, wait_for
from tests.test_crash import Daemon


def _status(inst: Instance) -> dict:
    from semdex_client.api import Client

    try:
        return Client(socket_path=inst.config().socket_path).call("status")
    except Exception:
        return {}


def test_unreadable_file_is_skipped_with_reason(tmp_path: Path, model_info) -> None:
    prefix: list[str] = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: cannot make a file unreadable")
        prefix = ["setpriv", "--inh-caps=-all", "--bounding-set=-all"]
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "fine.md").write_text("A readable note about lighthouses.\n")
    secret = folder / "secret.md"
    secret.write_text("nobody may read this\n")
    secret.chmod(0)
    inst = Instance(tmp_path, [folder])
    d = Daemon(inst, prefix=prefix)
    try:
        def done():
            st = _status(inst)
            return st if st.get("state") == "idle" and st.get("files_indexed") == 1 and st.get("failures") else None

        st = wait_for(done, timeout=180, what="index with one unreadable file")
        reasons = {Path(f["path"]).name: f["reason"] for f in st["failures"]}
        assert "permission" in reasons["secret.md"].lower(), reasons
        assert st["files_failed"] + st.get("files_skipped", 0) == 1
    finally:
        d.kill(signal.SIGTERM)
        inst.cleanup()
