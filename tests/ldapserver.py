"""A private OpenLDAP server for the tests (importable as ``ldapserver``).

``slapd`` from Debian (scripts/test installs it) in a temporary folder: a generated
tree loaded with ``slapadd``, a self-signed certificate for 127.0.0.1 (StartTLS on the
plain port, LDAPS on a second one), listening on loopback only. The tree:

- ``uid=ann``, ``uid=bob``, ``uid=dora`` in ``ou=people``, passwords ``<name>-pw``;
- ``uid=carl``, locked out by the password policy (``pwdAccountLockedTime``): the
  directory refuses his bind whatever the password;
- ``cn=staff`` (groupOfNames: ann) and ``cn=family`` (posixGroup: bob) in ``ou=groups``;
- ``cn=davserver,ou=services``, the account davserver searches with (``service-pw``):
  anonymous searches are refused.

Its monitor (``cn=Monitor``, readable by anyone) counts the connections it accepted.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from helpers import free_port

SUFFIX = "dc=example,dc=org"
PEOPLE = f"ou=people,{SUFFIX}"
SERVICE_DN = f"cn=davserver,ou=services,{SUFFIX}"
SERVICE_PASSWORD = "service-pw"
SCHEMAS = ("core", "cosine", "inetorgperson", "nis")

_CONF = """\
{includes}
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload ppolicy
pidfile {folder}/slapd.pid
TLSCACertificateFile {folder}/cert.pem
TLSCertificateFile {folder}/cert.pem
TLSCertificateKeyFile {folder}/key.pem

database mdb
suffix "{suffix}"
rootdn "cn=admin,{suffix}"
rootpw admin-pw
directory {folder}/data
overlay ppolicy
ppolicy_default "cn=default,ou=policies,{suffix}"
access to attrs=userPassword by anonymous auth by self read by * none
access to * by users read by * none

database monitor
access to * by * read
"""


def _person(name: str, **extra: str) -> str:
    lines = [f"dn: uid={name},{PEOPLE}", "objectClass: inetOrgPerson", f"uid: {name}",
             f"cn: {name.title()}", f"sn: {name.title()}", f"userPassword: {name}-pw"]  # fmt: skip
    lines += [f"{k}: {v}" for k, v in extra.items()]
    return "\n".join(lines)


def tree() -> str:
    """The LDIF of the test directory."""
    entries = [
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example",
        *(f"dn: ou={ou},{SUFFIX}\nobjectClass: organizationalUnit\nou: {ou}"
          for ou in ("people", "groups", "services", "policies")),
        f"dn: {SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
        f"cn: davserver\nuserPassword: {SERVICE_PASSWORD}",
        f"dn: cn=default,ou=policies,{SUFFIX}\nobjectClass: device\nobjectClass: pwdPolicy\n"
        "cn: default\npwdAttribute: userPassword\npwdLockout: TRUE",
        _person("ann"),
        _person("bob"),
        _person("dora"),
        _person("carl", pwdAccountLockedTime="000001010000Z"),
        f"dn: cn=staff,ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: staff\n"
        f"member: uid=ann,{PEOPLE}",
        f"dn: cn=family,ou=groups,{SUFFIX}\nobjectClass: posixGroup\ncn: family\n"
        "gidNumber: 1000\nmemberUid: bob",
    ]  # fmt: skip
    return "\n\n".join(entries) + "\n"


class Slapd:
    """One slapd in a folder of its own; ``url`` (plain and StartTLS) and ``ldaps_url``."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="davserver-ldap-"))
        self.port = free_port()
        self.ldaps_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        (self.folder / "data").mkdir()
        schemas = "\n".join(f"include /etc/ldap/schema/{s}.schema" for s in SCHEMAS)
        self.conf.write_text(_CONF.format(includes=schemas, folder=self.folder, suffix=SUFFIX))
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
             "-keyout", str(self.folder / "key.pem"), "-out", str(self.ca_file),
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        (self.folder / "tree.ldif").write_text(tree())
        self._run("/usr/sbin/slapadd", "-f", str(self.conf), "-l", str(self.folder / "tree.ldif"))

    @property
    def conf(self) -> Path:
        return self.folder / "slapd.conf"

    @property
    def ca_file(self) -> Path:
        """The server's self-signed certificate, which clients are to trust."""
        return self.folder / "cert.pem"

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.ldaps_port}"

    def _run(self, *command: str) -> None:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {done.stdout}{done.stderr}")

    def start(self) -> None:
        """Start slapd (in the foreground of its process) and wait until it answers."""
        urls = f"{self.url}/ {self.ldaps_url}/"
        with open(self.folder / "log", "ab") as log:
            self.proc = subprocess.Popen(
                ["/usr/sbin/slapd", "-f", str(self.conf), "-h", urls, "-d", "0"],
                stdout=subprocess.DEVNULL, stderr=log,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"slapd exited: {(self.folder / 'log').read_text()}")
            with contextlib.suppress(OSError, RuntimeError):
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                self._run("ldapwhoami", "-x", "-H", self.url, "-D", SERVICE_DN,
                          "-w", SERVICE_PASSWORD)  # fmt: skip
                return
            time.sleep(0.05)
        raise RuntimeError("slapd did not start answering")

    def connections(self) -> int:
        """How many connections the server has accepted since it started (its monitor)."""
        done = subprocess.run(
            ["ldapsearch", "-x", "-LLL", "-H", self.url, "-b", "cn=Total,cn=Connections,cn=Monitor",
             "-s", "base", "monitorCounter"],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        return int(done.stdout.split("monitorCounter:")[1].split()[0])

    def stop(self) -> None:
        """Stop slapd (its connections close, as when a directory server restarts)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def remove(self) -> None:
        """Stop slapd and remove the folder."""
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
