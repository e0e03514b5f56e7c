"""A throw-away TLS identity for tests: a self-signed certificate no trust store knows, and its key."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
from pathlib import Path

from spec.support.sockets import LoopbackServer, relay


def self_signed(directory: Path, dns_names: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (and ``dns_names``) and its key, as PEM files in ``directory``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0] if dns_names else "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    alternatives: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    alternatives += [x509.DNSName(dns) for dns in dns_names]
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A server-side TLS context presenting that certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


class TlsRelay(LoopbackServer):
    """An HTTPS front for a plain-HTTP server on loopback (the emulator): each connection's TLS ends here
    and its bytes are relayed to ``target_port``. Bounded: at most ``connections`` connections, 60 s each."""

    def __init__(self, target_port: int, context: ssl.SSLContext, connections: int = 8) -> None:
        super().__init__("https")
        self.target_port, self.context, self.connections = target_port, context, connections
        self.served = 0
        self.start()

    def _serve(self) -> None:
        self.listener.settimeout(30)
        while self.served < self.connections:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # closed, or nobody came
            self.served += 1
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(10)
            client = self.context.wrap_socket(conn, server_side=True)
        except (OSError, ssl.SSLError):
            conn.close()
            return  # the client refused the certificate
        with client, socket.create_connection(("127.0.0.1", self.target_port), timeout=10) as upstream:
            relay(client, upstream)
