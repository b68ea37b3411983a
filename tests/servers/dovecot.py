"""A real dovecot IMAP server for tests: unprivileged, on free ports of 127.0.0.1.

Static passdb/userdb (every user's password is ``secret``), Maildir under a temp folder,
plain IMAP with STARTTLS and IMAPS with a certificate from a trustme test CA.
"""

from __future__ import annotations

import imaplib
import mailbox
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import trustme

from tests.servers.net import free_port

PASSWORD = "secret"


def _mail_user() -> tuple[str, str]:
    """Dovecot refuses mail for uid 0: as root, run mail as nobody."""
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return entry.pw_name, str(entry.pw_gid)
    return "nobody", "nogroup"


CONFIG = """
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
mail_location = maildir:{root}/mail/%u
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = {user}
default_internal_user = {user}
default_internal_group = {group}
first_valid_uid = 1
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid={user} gid={group} home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    port = {port}
    address = 127.0.0.1
  }}
  inet_listener imaps {{
    port = {tls_port}
    address = 127.0.0.1
    ssl = yes
  }}
  chroot =
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


class Dovecot:
    """Start with ``with Dovecot(tmp_path) as server:``; ``server.port`` speaks IMAP +
    STARTTLS, ``server.tls_port`` IMAPS; ``server.ca_path`` is the CA to trust."""

    def __init__(self, root: Path | None = None) -> None:
        if shutil.which("dovecot") is None:
            raise RuntimeError("dovecot is not installed (Debian package dovecot-imapd)")
        # The mail user must be able to reach the folder: pytest's tmp dirs are 0700.
        self.root = Path(tempfile.mkdtemp(prefix="oppkit-dovecot-", dir=root))
        os.chmod(self.root, 0o755)
        self.port, self.tls_port = free_port(), free_port()
        self.host = "127.0.0.1"
        self.password = PASSWORD
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Dovecot:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        for sub in ("run", "state", "mail"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        cert.private_key_pem.write_to_path(str(self.root / "key.pem"))
        cert.cert_chain_pems[0].write_to_path(str(self.root / "cert.pem"))
        self.ca_path = str(self.root / "ca.pem")
        ca.cert_pem.write_to_path(self.ca_path)
        user, group = _mail_user()
        config = self.root / "dovecot.conf"
        config.write_text(CONFIG.format(root=self.root, user=user, group=group, password=PASSWORD,
                                        port=self.port, tls_port=self.tls_port))  # fmt: skip
        if os.geteuid() == 0:
            shutil.chown(self.root / "mail", user, group)
        self.proc = subprocess.Popen(
            ["dovecot", "-c", str(config), "-F"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"dovecot did not start; see {self.root / 'dovecot.log'}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def client(self, user: str) -> imaplib.IMAP4:
        conn = imaplib.IMAP4(self.host, self.port)
        conn.login(user, PASSWORD)
        return conn

    def append(self, user: str, folder: str, messages: list[bytes]) -> None:
        """Put messages into a folder over IMAP, as a mail client would."""
        conn = self.client(user)
        try:
            if folder != "INBOX":
                conn.create(folder)
            for raw in messages:
                conn.append(folder, None, None, raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
        finally:
            conn.logout()

    def deliver(self, user: str, messages: list[bytes]) -> None:
        """Drop messages into a user's INBOX as a local delivery agent does (Maildir
        ``new/``): thousands in a second, where APPEND takes a round trip each."""
        inbox = mailbox.Maildir(self.root / "mail" / user, create=True)
        for raw in messages:
            inbox.add(raw)
        inbox.close()
        if os.geteuid() == 0:
            user_name, group = _mail_user()
            for path in [self.root / "mail" / user, *(self.root / "mail" / user).rglob("*")]:
                shutil.chown(path, user_name, group)

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_path)
