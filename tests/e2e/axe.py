"""axe-core, from the npm registry, run in the pages the browser tests visit.

``npm install --no-save --prefix .cache/npm axe-core@4`` puts it in the project (``.ci/run`` does
it before the tests; ``axe_source`` does it on first use when npm is there).
"""

import shutil
import subprocess
from pathlib import Path
from typing import Any

from playwright.sync_api import Page

ROOT = Path(__file__).resolve().parents[2]
PREFIX = ROOT / ".cache" / "npm"
AXE_JS = PREFIX / "node_modules" / "axe-core" / "axe.min.js"
PACKAGE = "axe-core@4"

# WCAG 2.1 A and AA, and axe's best practices (landmarks, one main, headings...).
RULE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
# The impacts that fail a test. "moderate" and "minor" findings are left to review.
FAILING_IMPACTS = ("serious", "critical")


class AxeUnavailable(RuntimeError):
    pass


def axe_source() -> str:
    """The axe-core script; installs it with npm into .cache/npm when it is not there yet."""
    if not AXE_JS.is_file():
        npm = shutil.which("npm")
        if npm is None or shutil.which("node") is None:
            raise AxeUnavailable(
                "axe-core is not installed and node/npm are absent: install them (apt-get install nodejs "
                f"npm), or run `npm install --no-save --prefix {PREFIX} {PACKAGE}` elsewhere"
            )
        result = subprocess.run(
            [npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(PREFIX), PACKAGE],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0 or not AXE_JS.is_file():
            raise AxeUnavailable(f"npm install {PACKAGE} failed:\n{result.stdout}\n{result.stderr}")
    return AXE_JS.read_text(encoding="utf-8")


class Axe:
    """Runs axe-core in a page and reports the violations that fail a test."""

    def __init__(self, source: str) -> None:
        self.source = source

    def violations(self, page: Page) -> list[dict[str, Any]]:
        # Evaluated through the DevTools protocol, so the portal's Content-Security-Policy (no
        # inline or foreign script) stays in force for the page itself.
        if not page.evaluate("() => typeof window.axe !== 'undefined'"):
            page.evaluate(self.source)
        results: dict[str, Any] = page.evaluate(
            "async (tags) => await window.axe.run(document, "
            "{resultTypes: ['violations'], iframes: false, runOnly: {type: 'tag', values: tags}})",
            RULE_TAGS,
        )
        return [v for v in results["violations"] if v.get("impact") in FAILING_IMPACTS]

    @staticmethod
    def describe(violations: list[dict[str, Any]]) -> str:
        lines = []
        for violation in violations:
            lines.append(
                f"- [{violation['impact']}] {violation['id']}: {violation['help']} ({violation['helpUrl']})"
            )
            for node in violation["nodes"][:10]:
                lines.append(f"    {' '.join(node['target'])}: {node.get('failureSummary', '').strip()}")
                lines.append(f"      {node['html'][:200]}")
        return "\n".join(lines)
