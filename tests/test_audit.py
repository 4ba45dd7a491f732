"""`make audit` (tools/audit.py) says when packages could not be audited (issue 17 item 11: pip-audit said
"No known vulnerabilities found" while 104 packages had not been checked)."""

import importlib.util
import json
import subprocess
from pathlib import Path

TOOL = Path(__file__).parent.parent / "tools" / "audit.py"
spec = importlib.util.spec_from_file_location("audit_tool", TOOL)
audit = importlib.util.module_from_spec(spec)
spec.loader.exec_module(audit)

SKIPPED = {"name": "torch", "skip_reason": "Dependency not found on PyPI and could not be audited: torch (2.13.0+cpu)"}
CLEAN = {"name": "numpy", "version": "2.1.0", "vulns": []}
VULNERABLE = {"name": "h11", "version": "0.14.0", "vulns": [{"id": "GHSA-xxxx", "fix_versions": ["0.16.0"]}]}


def test_unaudited_packages_are_said_and_fail_the_audit():
    text, status = audit.summarize({"dependencies": [CLEAN, SKIPPED, dict(SKIPPED, name="triton")]})
    assert status == 2
    assert "NOT AUDITED torch: Dependency not found on PyPI" in text
    assert text.splitlines()[-1] == ("audit: 1 of 3 packages audited, 0 with known vulnerabilities; 2 could NOT be "
                                     "audited (listed above); no known vulnerabilities among the audited ones, the "
                                     "others are unchecked")
    assert "No known vulnerabilities found" not in text


def test_vulnerabilities_and_a_clean_audit():
    text, status = audit.summarize({"dependencies": [CLEAN, VULNERABLE]})
    assert status == 1 and "VULNERABLE h11 0.14.0: GHSA-xxxx (fixed in 0.16.0)" in text
    text, status = audit.summarize({"dependencies": [CLEAN]})
    assert status == 0 and text == "audit: all 1 packages audited, 0 with known vulnerabilities: no known vulnerabilities found"


def test_the_tool_reads_pip_audit_json(monkeypatch):
    """main() end to end, with pip-audit replaced by a canned JSON answer (no network)."""
    def fake_run(command, **kwargs):
        assert command[1:3] == ["-m", "pip_audit"] and "json" in command
        return subprocess.CompletedProcess(command, 0, json.dumps({"dependencies": [SKIPPED], "fixes": []}), "")

    monkeypatch.setattr(audit.subprocess, "run", fake_run)
    assert audit.main([]) == 2

    def broken(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "network down\n")

    monkeypatch.setattr(audit.subprocess, "run", broken)
    assert audit.main([]) == 3
