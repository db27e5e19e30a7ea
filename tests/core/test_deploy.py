"""deploy/ is true: nginx accepts deploy/nginx.conf as it stands (``nginx -t``, its certificate
paths pointed at real files), its upstream fails over as the cluster test's nginx does
(tests/core/test_cluster.py runs those directives), and every ``esante`` command line of the
systemd units is one the command accepts."""

import datetime
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from django.core.management import get_commands, load_command_class

from esante.accounts.local_pki import LocalPki

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def test_nginx_accepts_the_deployed_configuration(tmp_path: Path) -> None:
    if NGINX is None:
        pytest.skip("nginx is not installed (Debian package `nginx`; .ci/run installs it)")
    pki = LocalPki(tmp_path / "pki")
    cert, key = pki.server_certificate()
    ca_key = serialization.load_pem_private_key(pki.ca_key_path.read_bytes(), password=None)
    now = datetime.datetime.now(datetime.UTC)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(pki.ca.cert.subject)
        .last_update(now)
        .next_update(now + datetime.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    (tmp_path / "ca.crl").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    files = {
        "/etc/ssl/esante/portail.crt": cert,
        "/etc/ssl/esante/certificat.crt": cert,
        "/etc/ssl/esante/portail.key": key,
        "/etc/ssl/esante/certificat.key": key,
        "/etc/ssl/esante/luxtrust-ca.pem": pki.ca_path,
        "/etc/ssl/esante/luxtrust.crl": tmp_path / "ca.crl",
        "/var/log/nginx/": f"{tmp_path}/",
    }
    site = (DEPLOY / "nginx.conf").read_text()
    for deployed, local in files.items():
        assert deployed in site, deployed
        site = site.replace(deployed, str(local))
    (tmp_path / "site.conf").write_text(site)
    user = "user root;" if os.geteuid() == 0 else ""
    (tmp_path / "nginx.conf").write_text(
        f"{user}\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n access_log off;\n include {tmp_path}/site.conf;\n}}\n"
    )
    result = subprocess.run(
        [
            NGINX,
            "-t",
            "-p",
            str(tmp_path),
            "-c",
            str(tmp_path / "nginx.conf"),
            "-e",
            str(tmp_path / "error.log"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


def test_the_upstream_has_two_app_servers_and_never_resends_a_post() -> None:
    site = (DEPLOY / "nginx.conf").read_text()
    upstream = re.search(r"upstream esante \{(.*?)\}", site, re.DOTALL)
    assert upstream and len(re.findall(r"^\s*server \S+", upstream[1], re.MULTILINE)) == 2
    assert re.search(r"^proxy_next_upstream error timeout;", site, re.MULTILINE)
    assert "non_idempotent" not in site.replace("`non_idempotent`", "")
    # The certificate origin still receives the verified certificate, the portal never forwards one.
    assert "proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;" in site
    assert site.count("proxy_pass http://esante;") == site.count('proxy_set_header X-SSL-Client-Cert "";') + 1


def _esante_lines() -> list[tuple[str, list[str]]]:
    lines = []
    for unit in sorted(DEPLOY.glob("*.service")):
        for line in unit.read_text().splitlines():
            if line.startswith("ExecStart=/srv/esante/venv/bin/esante "):
                lines.append(
                    (unit.name, shlex.split(line.removeprefix("ExecStart=/srv/esante/venv/bin/esante ")))
                )
    return lines


def test_the_units_run_commands_that_exist_with_options_they_accept() -> None:
    lines = _esante_lines()
    assert {name for _, (name, *_) in lines} >= {
        "serve",
        "run_jobs",
        "send_access_digests",
        "purge_throttles",
        "purge_api_throttles",
    }
    commands = get_commands()
    for unit, (name, *arguments) in lines:
        assert name in commands, (unit, name)
        # systemd puts the unit's variables and specifiers in: a stand-in for each.
        arguments = [a.replace("${ESANTE_SERVE_HOST}", "127.0.0.1").replace("%i", "8000") for a in arguments]
        parser = load_command_class(commands[name], name).create_parser("esante", name)
        parser.parse_args(arguments)  # exits (SystemExit) on an option the command does not take


def test_the_app_server_unit_is_a_template_with_a_metrics_directory_per_instance() -> None:
    unit = (DEPLOY / "esante@.service").read_text()
    assert "--port %i" in unit and "ESANTE_METRICS_DIR=/run/esante-%i/metrics" in unit
    assert not (DEPLOY / "esante.service").exists()
