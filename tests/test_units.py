"""The service definitions: systemd user unit (checked by systemd-analyze when it is installed,
parsed here either way) and the launchd LaunchAgent plist (parsed with plistlib)."""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from semdexd.config import default_paths
from semdexd.system.resources import (DAEMON_MB, MINILM, WORKER_MB, Footprint, cgroup_limit_bytes, default_readers,
                                      default_workers)
from tests.test_daemon import BIN

REPO = Path(__file__).resolve().parent.parent
UNIT = REPO / "systemd" / "semdexd.service"
PLIST = REPO / "launchd" / "org.semdex.semdexd.plist"
UNIT_EXEC_DEFAULT = "%h/.local/bin/semdexd"


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """systemd's INI dialect: sections, repeatable keys, # and ; comments."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"key outside a section: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {line}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def installed_unit(semdexd: str) -> str:
    """The unit as the README's install step writes it (sed of the ExecStart path)."""
    return UNIT.read_text().replace(UNIT_EXEC_DEFAULT, semdexd)


def test_unit_runs_the_daemon_in_the_foreground_with_limits() -> None:
    unit = parse_unit(UNIT.read_text())
    service = unit["Service"]
    assert service["ExecStart"] == [f"{UNIT_EXEC_DEFAULT} run"]
    assert service["Restart"] == ["on-failure"]
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert service["KillMode"] == ["mixed"]
    assert service["IOSchedulingClass"] == ["idle"]
    assert int(service["Nice"][0]) > 0
    assert service["MemoryHigh"] and service["MemoryMax"]
    assert service["UMask"] == ["0077"]
    assert int(service["TimeoutStopSec"][0]) >= 30, "room to drain in-flight files"
    assert unit["Install"]["WantedBy"] == ["default.target"]
    assert "StartLimitBurst" in unit["Unit"] and "StartLimitBurst" not in service


SANDBOX = {
    "ProtectSystem": "strict", "ProtectHome": "read-only", "PrivateTmp": "yes", "PrivateDevices": "yes",
    "NoNewPrivileges": "yes", "CapabilityBoundingSet": "", "RestrictAddressFamilies": "AF_UNIX",
    "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes", "RestrictNamespaces": "yes", "LockPersonality": "yes",
    "RestrictSUIDSGID": "yes", "RestrictRealtime": "yes", "SystemCallArchitectures": "native",
    "RuntimeDirectory": "semdex", "RuntimeDirectoryMode": "0700", "RestartPreventExitStatus": "78",
}


def test_unit_is_sandboxed_but_can_write_its_own_folders() -> None:
    service = parse_unit(UNIT.read_text())["Service"]
    for key, value in SANDBOX.items():
        assert service.get(key) == [value], f"{key}={service.get(key)}"
    assert "@system-service" in service["SystemCallFilter"]
    # CTranslate2 returns wrong vectors under W^X (measured with prctl PR_SET_MDWE): never set it.
    assert service.get("MemoryDenyWriteExecute", ["no"]) == ["no"]
    # The writable folders are the daemon's default data and state dirs (HOME=%h), created first.
    paths = default_paths({"HOME": "%h"})
    writable = service["ReadWritePaths"][0].split()
    assert writable == [str(paths.data_dir), str(paths.state_dir)]
    assert service["ExecStartPre"] == [f"+/bin/mkdir -p -m 0700 {' '.join(writable)}"]
    assert paths.runtime_dir.name == service["RuntimeDirectory"][0]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_unit_security_exposure_is_low(tmp_path: Path) -> None:
    """`systemd-analyze security` rated the unsandboxed unit 9.4 UNSAFE; now 1.6 OK."""
    unit = tmp_path / "semdexd.service"
    unit.write_text(installed_unit("/usr/bin/true"))
    result = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(unit)], capture_output=True, check=False,
                            text=True, timeout=120)
    if "--offline" in result.stderr:
        pytest.skip("this systemd-analyze has no --offline (systemd < 250)")
    line = next((ln for ln in result.stdout.splitlines() if "Overall exposure level" in ln), "")
    assert line, result.stdout + result.stderr
    score = float(line.split(":")[1].split()[0])
    assert score <= 2.0, line


def test_default_workers_are_bounded_by_memory() -> None:
    assert default_workers(16, 1, 2048) == (2048 - DAEMON_MB) // WORKER_MB == 7  # the unit's MemoryHigh=2G
    assert default_workers(2, 1, 2048) == 2          # cores bind first on a small machine
    assert default_workers(16, 1, None) == 16        # no known budget: one per core
    assert default_workers(16, 2, None) == 8         # threads per worker count against cores
    assert default_workers(16, 1, 300) == 1          # never fewer than one
    assert default_workers(1, 4, 64_000) == 1


E5 = Footprint(113.9, 16.2)    # multilingual-e5-small's model.bin and tokenizer.json, in MB


def test_a_larger_model_fits_fewer_workers() -> None:
    """e5's workers (~500 MB measured) and daemon (~535 MB idle) hold its weights and its
    250k-piece tokenizer: 7 MiniLM-sized workers would pass the unit's MemoryMax=3G."""
    assert 450 < E5.worker_mb < 700 and 800 < E5.daemon_mb < 1000
    assert MINILM.worker_mb == WORKER_MB and MINILM.daemon_mb == DAEMON_MB
    assert default_workers(16, 1, 2048, E5) == 1
    assert default_workers(16, 1, 6144, E5) == 8
    assert default_workers(2, 1, 6144, E5) == 2


def test_default_readers_fit_beside_the_workers() -> None:
    assert default_readers(16, 2048, 7) == 2             # the unit's MemoryHigh=2G: not 16 beside 7 workers
    assert default_readers(16, 2048, 1, E5) == 1         # never fewer than one
    assert default_readers(2, 6144, 2) == default_readers(2, 6144, 2, E5) == 2   # cores bind first
    assert default_readers(16, 6144, 8, E5) < default_readers(16, 6144, 8) == 16
    assert default_readers(16, None, 16, E5) == 16       # no known budget: one per core


def test_cgroup_limits_are_read_from_v2_ancestors_and_v1(tmp_path: Path) -> None:
    leaf = tmp_path / "user.slice" / "user-1000.slice" / "semdexd.service"
    leaf.mkdir(parents=True)
    (tmp_path / "cgroup.controllers").write_text("memory\n")
    (leaf / "memory.high").write_text(f"{2 << 30}\n")
    (leaf / "memory.max").write_text(f"{3 << 30}\n")
    (leaf.parent / "memory.high").write_text("max\n")
    v2 = "0::/user.slice/user-1000.slice/semdexd.service\n"
    assert cgroup_limit_bytes(v2, tmp_path) == 2 << 30
    (leaf.parent / "memory.max").write_text(f"{1 << 30}\n")  # a tighter limit on a parent wins
    assert cgroup_limit_bytes(v2, tmp_path) == 1 << 30
    assert cgroup_limit_bytes("0::/elsewhere\n", tmp_path) is None
    v1 = tmp_path / "memory" / "job"
    v1.mkdir(parents=True)
    (v1 / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # v1's "unlimited"
    assert cgroup_limit_bytes("4:memory:/job\n", tmp_path) is None
    (v1 / "memory.limit_in_bytes").write_text(f"{1536 << 20}\n")
    assert cgroup_limit_bytes("4:memory:/job\n1:cpu:/\n", tmp_path) == 1536 << 20


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed (unit parsed above)")
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    semdexd = BIN / "semdexd"
    if not semdexd.exists():
        pytest.skip("the semdexd console script is not installed")
    unit = tmp_path / "semdexd.service"
    unit.write_text(installed_unit(str(semdexd)))
    runtime = tempfile.mkdtemp(dir="/tmp", prefix="sx")
    try:
        env = {**os.environ, "XDG_RUNTIME_DIR": runtime}
        result = subprocess.run(["systemd-analyze", "--user", "verify", str(unit)], env=env,
                                capture_output=True, text=True, check=False, timeout=120)
        if "Failed to initialize manager" in result.stderr:  # no user manager possible here: system mode
            result = subprocess.run(["systemd-analyze", "verify", str(unit)], env=env,
                                    capture_output=True, text=True, check=False, timeout=120)
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", f"systemd-analyze warned: {result.stderr}"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_catches_a_broken_unit(tmp_path: Path) -> None:
    """The check above is worth something: a typo in the unit shows up."""
    unit = tmp_path / "semdexd.service"
    unit.write_text(installed_unit("/nonexistent/semdexd").replace("Nice=10", "Nice=very"))
    runtime = tempfile.mkdtemp(dir="/tmp", prefix="sx")
    try:
        result = subprocess.run(["systemd-analyze", "verify", str(unit)], env={**os.environ, "XDG_RUNTIME_DIR": runtime},
                                capture_output=True, text=True, check=False, timeout=120)
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
    assert "nice" in result.stderr.lower() or result.returncode != 0


def load_plist(text: str | None = None) -> dict:
    return plistlib.loads((text or PLIST.read_text()).encode())


def test_plist_is_a_keepalive_launch_agent_with_log_paths() -> None:
    plist = load_plist()
    assert plist["Label"] == "org.semdex.semdexd" == PLIST.stem
    assert plist["ProgramArguments"] == ["@SEMDEXD@", "run"]
    assert plist["RunAtLoad"] is True
    # Only crashes are restarted: a config error (exit 78) or a clean stop stays down.
    assert plist["KeepAlive"] == {"Crashed": True}
    assert plist["ThrottleInterval"] >= 30
    assert plist["StandardOutPath"].startswith("@HOME@/") and plist["StandardErrorPath"].startswith("@HOME@/")
    assert plist["StandardOutPath"] != plist["StandardErrorPath"]
    assert plist["ProcessType"] == "Background" and plist["LowPriorityIO"] is True
    assert plist["Umask"] == 0o077
    assert plist["ExitTimeOut"] >= 30


def test_plist_after_the_install_substitution() -> None:
    text = PLIST.read_text().replace("@SEMDEXD@", "/Users/ann/semdex/.venv/bin/semdexd").replace("@HOME@", "/Users/ann")
    plist = load_plist(text)
    assert "@" not in plistlib.dumps(plist).decode().split("<plist", 1)[1]
    assert all(Path(p).is_absolute() for p in (plist["ProgramArguments"][0], plist["StandardOutPath"],
                                               plist["StandardErrorPath"]))
    assert plistlib.loads(plistlib.dumps(plist)) == plist
    if shutil.which("plutil"):  # macOS
        result = subprocess.run(["plutil", "-lint", str(PLIST)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
