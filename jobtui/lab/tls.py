"""TLS for the lab: a CA, a server certificate for 127.0.0.1 and a client certificate,
made with `certtool` (gnutls-bin), and a private libvirtd listening for qemu+tls on a
loopback port. The client finds its files through the URI's `pkipath=`, so nothing is
read from or written to /etc/pki.

    pki = LabPki(base / "pki")
    daemon = PrivateDaemon(base, "h1", extra_conf=pki.daemon_conf(port), listen=True)
    uri = pki.uri(port)        # qemu+tls://127.0.0.1:PORT/system?pkipath=...
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from jobtui.lab.images import LabError

LOOPBACK = "127.0.0.1"
_DAYS = 30


def _certtool(*args: str, template: str | None = None, cwd: Path) -> None:
    argv = ["certtool", *args]
    if template is not None:
        (cwd / "template.info").write_text(template)
        argv += ["--template", str(cwd / "template.info")]
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        tail = " ".join(proc.stderr.split())[-300:]
        raise LabError(f"certtool {args[0]} failed: {tail}")


class LabPki:
    """A CA of its own with one server and one client certificate.

    `server_dir` holds what libvirtd needs (cacert, servercert, serverkey);
    `client_dir` is a pkipath (cacert.pem, clientcert.pem, clientkey.pem).
    """

    def __init__(self, root: Path, *, name: str = "jobtui lab CA") -> None:
        self.root = Path(root).resolve()
        self.server_dir = self.root / "server"
        self.client_dir = self.root / "client"
        for d in (self.root, self.server_dir, self.client_dir):
            d.mkdir(parents=True, exist_ok=True)
            os.chmod(d, 0o700)
        r = self.root
        # RSA: libvirt insists on "key encipherment" usage, which ECDSA keys cannot have.
        _certtool("--generate-privkey", "--bits=2048", "--outfile", "cakey.pem", cwd=r)
        _certtool(
            "--generate-self-signed",
            "--load-privkey",
            "cakey.pem",
            "--outfile",
            "cacert.pem",
            template=f'cn = "{name}"\nca\ncert_signing_key\nexpiration_days = {_DAYS}\n',
            cwd=r,
        )
        self._issue(
            "server",
            f'organization = "jobtui lab"\ncn = "{LOOPBACK}"\nip_address = "{LOOPBACK}"\n'
            f"tls_www_server\nencryption_key\nsigning_key\nexpiration_days = {_DAYS}\n",
            self.server_dir,
        )
        self._issue(
            "client",
            f'organization = "jobtui lab"\ncn = "jobtui-client"\n'
            f"tls_www_client\nencryption_key\nsigning_key\nexpiration_days = {_DAYS}\n",
            self.client_dir,
        )
        for d in (self.server_dir, self.client_dir):
            (d / "cacert.pem").write_bytes((r / "cacert.pem").read_bytes())

    def _issue(self, who: str, template: str, into: Path) -> None:
        key, cert = into / f"{who}key.pem", into / f"{who}cert.pem"
        _certtool("--generate-privkey", "--bits=2048", "--outfile", str(key), cwd=self.root)
        _certtool(
            "--generate-certificate",
            "--load-privkey",
            str(key),
            "--load-ca-certificate",
            "cacert.pem",
            "--load-ca-privkey",
            "cakey.pem",
            "--outfile",
            str(cert),
            template=template,
            cwd=self.root,
        )

    def daemon_conf(self, port: int) -> list[str]:
        """libvirtd.conf lines: TLS on 127.0.0.1:`port` with these files (needs --listen)."""
        s = self.server_dir
        conf = {
            "listen_tls": "1",
            "listen_tcp": "0",
            "listen_addr": f'"{LOOPBACK}"',
            "tls_port": f'"{port}"',
            "ca_file": f'"{s / "cacert.pem"}"',
            "cert_file": f'"{s / "servercert.pem"}"',
            "key_file": f'"{s / "serverkey.pem"}"',
            # The certificate is the authentication, as in most fleets.
            "auth_tls": '"none"',
        }
        return [f"{k} = {v}" for k, v in conf.items()]

    def uri(self, port: int, pkipath: Path | None = None) -> str:
        return f"qemu+tls://{LOOPBACK}:{port}/system?pkipath={pkipath or self.client_dir}"
