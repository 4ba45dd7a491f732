"""`make audit`: pip-audit over the installed packages, with an honest summary.

pip-audit's own text output says "No known vulnerabilities found" even when it could not audit most
packages (a CPU build of torch, ``2.13.0+cpu``, is not on PyPI under that version, nor are packages from other
indexes). This script runs it with JSON output and says, last, how many packages were audited, which are
vulnerable and which could NOT be audited, and why.

Exit status: 0 all packages audited and none vulnerable; 1 vulnerabilities found; 2 some packages could
not be audited (and none found vulnerable); 3 pip-audit itself failed.

Usage: python tools/audit.py [extra pip-audit arguments]
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any


def summarize(report: dict[str, Any]) -> tuple[str, int]:
    """The text to print for pip-audit's JSON ``report``, and the exit status."""
    audited, vulnerable, skipped = [], [], []
    for dep in report.get("dependencies", []):
        if "skip_reason" in dep:
            skipped.append(dep)
        else:
            audited.append(dep)
            if dep.get("vulns"):
                vulnerable.append(dep)
    lines = []
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "no fixed version yet"
            lines.append(f"VULNERABLE {dep['name']} {dep['version']}: {vuln['id']} (fixed in {fixes})")
    for dep in skipped:
        lines.append(f"NOT AUDITED {dep['name']}: {dep['skip_reason']}")
    count = len(audited) + len(skipped)
    summary = (f"audit: {len(audited)} of {count} packages audited, {len(vulnerable)} with known vulnerabilities; "
               f"{len(skipped)} could NOT be audited (listed above)" if skipped else
               f"audit: all {count} packages audited, {len(vulnerable)} with known vulnerabilities")
    if not vulnerable and not skipped:
        summary += ": no known vulnerabilities found"
    elif not vulnerable:
        summary += "; no known vulnerabilities among the audited ones, the others are unchecked"
    lines.append(summary)
    return "\n".join(lines), 1 if vulnerable else (2 if skipped else 0)


def main(argv: list[str]) -> int:
    command = [sys.executable, "-m", "pip_audit", "--skip-editable", "--progress-spinner", "off", "--desc", "on",
               "-f", "json", *argv]
    result = subprocess.run(command, capture_output=True, text=True)
    try:
        report = json.loads(result.stdout)
    except ValueError:
        sys.stderr.write(result.stderr)
        print(f"audit: pip-audit failed (exit {result.returncode}); nothing was audited", file=sys.stderr)
        return 3
    text, status = summarize(report)
    print(text)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
