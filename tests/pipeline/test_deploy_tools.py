"""The deployment files are what their own tools accept: ``systemd-analyze verify`` reads every
unit without a complaint (an unknown key, a bad value, a typo in a section), ``nginx -t`` takes
the proxy's configuration. Each runs where the tool is installed (Debian: systemd, nginx) and
is skipped elsewhere; ``tests/test_deploy.py`` checks what they say."""

from __future__ import annotations

import datetime
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.deploy_files import NGINX, UNITS

LETSENCRYPT = "/etc/letsencrypt/live/shiphub.example.com"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not here")
def test_systemd_reads_every_unit_without_a_complaint(tmp_path: Path) -> None:
    for path in UNITS.iterdir():
        # A template is verified as one of its instances.
        shutil.copy(path, tmp_path / path.name.replace("@.", "@main."))
    ran = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *sorted(map(str, tmp_path.iterdir()))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # The programs are installed on the host (/opt/shiphub/.venv), not here.
    complaints = [
        line
        for line in (ran.stdout + ran.stderr).splitlines()
        if line.strip() and "is not executable: No such file or directory" not in line
    ]
    assert not complaints, complaints


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx not here")
def test_nginx_takes_the_proxy_configuration(tmp_path: Path) -> None:
    certificate, key = _self_signed(tmp_path)
    site = NGINX.read_text()
    assert f"{LETSENCRYPT}/fullchain.pem" in site and f"{LETSENCRYPT}/privkey.pem" in site
    site = site.replace(f"{LETSENCRYPT}/fullchain.pem", str(certificate))
    site = site.replace(f"{LETSENCRYPT}/privkey.pem", str(key))
    (tmp_path / "site.conf").write_text(site)
    # As Debian's nginx.conf includes a site: inside its http block.
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{ access_log off; include {tmp_path}/site.conf; }}\n"
    )
    ran = subprocess.run(
        [
            "nginx",
            "-t",
            "-q",
            "-p",
            str(tmp_path),
            "-e",
            str(tmp_path / "error.log"),
            "-c",
            str(tmp_path / "nginx.conf"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr


def _self_signed(where: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shiphub.example.com")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (where / "fullchain.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (where / "privkey.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return where / "fullchain.pem", where / "privkey.pem"
