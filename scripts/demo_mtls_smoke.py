#!/usr/bin/env python3
"""Checks the demo's client certificates (mutual TLS, DESIGN.md "Client
certificates") with Python's `ssl` and the `websockets` library, clients the
project did not write, and certificates made by the `cryptography` package.

    python3 scripts/demo_mtls_smoke.py make-pki DIR
        writes ca.pem, crl.pem, server.pem + server-key.pem and a client
        certificate + key for each case into DIR
    python3 scripts/demo_mtls_smoke.py check https://127.0.0.1:PORT DIR ORIGIN [METRICS_URL]
        drives a demo started with WSGATE_TLS_CERT=DIR/server.pem,
        WSGATE_TLS_KEY=DIR/server-key.pem, WSGATE_TLS_CLIENT_CA=DIR/ca.pem,
        WSGATE_TLS_CLIENT_CRL=DIR/crl.pem and ORIGIN in its allowlist

Exits non-zero on the first broken expectation.
"""

import asyncio
import base64
import datetime
import hashlib
import ipaddress
import json
import os
import ssl
import sys
import urllib.error
import urllib.request

import demo_smoke
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from demo_smoke import check

NOW = datetime.datetime.now(datetime.timezone.utc)
DAY = datetime.timedelta(days=1)

# name: (issuer, common name, not before, not after, extended key usage)
CLIENTS = {
    "alice": ("ca", "alice", -DAY, 30 * DAY, ExtendedKeyUsageOID.CLIENT_AUTH),
    "admin": ("ca", "admin", -DAY, 30 * DAY, ExtendedKeyUsageOID.CLIENT_AUTH),
    "alice-2": ("ca", "alice", -DAY, 30 * DAY, ExtendedKeyUsageOID.CLIENT_AUTH),
    "other-ca": ("other", "alice", -DAY, 30 * DAY, ExtendedKeyUsageOID.CLIENT_AUTH),
    "expired": ("ca", "alice", -10 * DAY, -DAY, ExtendedKeyUsageOID.CLIENT_AUTH),
    "revoked": ("ca", "alice", -DAY, 30 * DAY, ExtendedKeyUsageOID.CLIENT_AUTH),
    "self-signed": ("self", "alice", -DAY, 30 * DAY, ExtendedKeyUsageOID.CLIENT_AUTH),
    "server-only": ("ca", "alice", -DAY, 30 * DAY, ExtendedKeyUsageOID.SERVER_AUTH),
}
REFUSED_AT_TLS = ["other-ca", "expired", "revoked", "self-signed", "server-only"]


def name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def write(directory, stem, certificate, key):
    with open(os.path.join(directory, f"{stem}.pem"), "wb") as out:
        out.write(certificate.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        with open(os.path.join(directory, f"{stem}-key.pem"), "wb") as out:
            out.write(key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ))


def authority(common_name):
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name(common_name)).issuer_name(name(common_name))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(NOW - DAY).not_valid_after(NOW + 365 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate, key


def leaf(issuer, common_name, not_before, not_after, usage, sans=()):
    key = ec.generate_private_key(ec.SECP256R1())
    issuer_certificate, issuer_key = issuer if issuer else (None, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(common_name))
        .issuer_name(issuer_certificate.subject if issuer_certificate else name(common_name))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(NOW + not_before).not_valid_after(NOW + not_after)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()), key


def make_pki(directory):
    os.makedirs(directory, exist_ok=True)
    ca = authority("wsgate demo client CA")
    other = authority("another CA")
    # The CA's key too: `check` makes a certificate that ends in seconds.
    # A test PKI, made for one run and thrown away.
    write(directory, "ca", *ca)
    server = leaf(ca, "localhost", -DAY, 30 * DAY, ExtendedKeyUsageOID.SERVER_AUTH,
                  [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    write(directory, "server", *server)
    issuers = {"ca": ca, "other": other, "self": None}
    revoked = None
    for stem, (issuer, common_name, not_before, not_after, usage) in CLIENTS.items():
        certificate, key = leaf(issuers[issuer], common_name, not_before, not_after, usage)
        write(directory, stem, certificate, key)
        if stem == "revoked":
            revoked = certificate
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca[0].subject).last_update(NOW - DAY).next_update(NOW + 7 * DAY)
        .add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(revoked.serial_number)
            .revocation_date(NOW - DAY).build())
        # RFC 5280 §5.2.3: conforming CRLs carry a CRL number.
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca[1].public_key()),
                       critical=False)
        .sign(ca[1], hashes.SHA256())
    )
    with open(os.path.join(directory, "crl.pem"), "wb") as out:
        out.write(crl.public_bytes(serialization.Encoding.PEM))
    print(f"PKI written to {directory}")


def context(directory, client):
    """TLS 1.3 trusting the demo's CA, presenting `client`'s certificate."""
    ctx = ssl.create_default_context(cafile=os.path.join(directory, "ca.pem"))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    if client:
        ctx.load_cert_chain(os.path.join(directory, f"{client}.pem"),
                            os.path.join(directory, f"{client}-key.pem"))
    return ctx


def thumbprint(directory, client):
    """RFC 8705 x5t#S256 of a client certificate."""
    with open(os.path.join(directory, f"{client}.pem"), "rb") as pem:
        der = x509.load_pem_x509_certificate(pem.read()).public_bytes(serialization.Encoding.DER)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def not_after(directory, client):
    with open(os.path.join(directory, f"{client}.pem"), "rb") as pem:
        certificate = x509.load_pem_x509_certificate(pem.read())
    return int(certificate.not_valid_after_utc.timestamp())


def post(base, directory, client, path, body=None, token=None):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(base + path, data=json.dumps(body or {}).encode(),
                                     headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, context=context(directory, client)) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def claims(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def short_lived(directory, seconds):
    """A certificate of the demo's CA for `carol` that ends in `seconds`."""
    with open(os.path.join(directory, "ca.pem"), "rb") as pem:
        ca_certificate = x509.load_pem_x509_certificate(pem.read())
    with open(os.path.join(directory, "ca-key.pem"), "rb") as pem:
        ca_key = serialization.load_pem_private_key(pem.read(), password=None)
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate, key = leaf((ca_certificate, ca_key), "carol", now - NOW - DAY,
                            now - NOW + datetime.timedelta(seconds=seconds),
                            ExtendedKeyUsageOID.CLIENT_AUTH)
    write(directory, "short", certificate, key)
    return "short"


async def close_of(base, directory, client, origin, within, during=None):
    """Opens a socket with `client`'s certificate, runs `during` (if any),
    and waits up to `within` seconds for the close: `(code, reason)`."""
    import websockets
    url = base.replace("https", "wss", 1) + "/ws"
    async with websockets.connect(url, ssl=context(directory, client),
                                  additional_headers={"Origin": origin},
                                  subprotocols=["chat.v1"], open_timeout=5) as socket_:
        await asyncio.wait_for(socket_.recv(), 5)  # the welcome
        if during:
            during()
        try:
            while True:
                await asyncio.wait_for(socket_.recv(), within)
        except websockets.exceptions.ConnectionClosed as closed:
            return (closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else (None, None)
        except asyncio.TimeoutError:
            return ("still open", None)


async def open_socket(base, directory, client, origin, token=None, path="/ws"):
    """The welcome, `("status", code)` for an HTTP refusal, or
    `("tls", error)` when the TLS handshake ended without an HTTP answer."""
    import websockets
    from websockets.exceptions import InvalidStatus
    headers = {}
    if origin:
        headers["Origin"] = origin
    if token:
        headers["Authorization"] = f"Bearer {token}"
    url = base.replace("https", "wss", 1) + path
    try:
        async with websockets.connect(url, ssl=context(directory, client), origin=None,
                                      additional_headers=headers, subprotocols=["chat.v1"],
                                      open_timeout=5) as socket_:
            return json.loads(await asyncio.wait_for(socket_.recv(), 5))
    except InvalidStatus as refused:
        return ("status", refused.response.status_code)
    except (ssl.SSLError, ConnectionError, EOFError, OSError,
            websockets.exceptions.InvalidMessage) as error:
        return ("tls", type(error).__name__)


async def run_checks(base, directory, origin, metrics):
    before = demo_smoke.scrape(metrics) if metrics else {}

    welcome = await open_socket(base, directory, "alice", origin)
    check(isinstance(welcome, dict) and welcome.get("sub") == "alice" and welcome.get("roles") == ["user"],
          f"a certificate of the CA opens a socket as its Common Name, roles [user]: {welcome}")
    check(welcome.get("expires_at") == not_after(directory, "alice"),
          "the socket expires with the certificate")
    welcome = await open_socket(base, directory, "admin", origin)
    check(isinstance(welcome, dict) and welcome.get("sub") == "admin" and welcome.get("roles") == ["user"],
          "a certificate named admin is the subject admin with roles [user], never admin's roles")

    for client in REFUSED_AT_TLS:
        outcome = await open_socket(base, directory, client, origin)
        check(isinstance(outcome, tuple) and outcome[0] == "tls",
              f"certificate {client}: the TLS handshake ends, no HTTP answer ({outcome})")

    check(await open_socket(base, directory, None, origin) == ("status", 401),
          "no certificate and no credential: 401")
    check(await open_socket(base, directory, "alice", None) == ("status", 403),
          "the certificate transport needs an allowed Origin: 403 without one")
    check(await open_socket(base, directory, "alice", "https://evil.example") == ("status", 403),
          "and 403 from another Origin")

    # /login over a connection with a certificate binds the token to it.
    status, login = post(base, directory, "alice", "/login",
                         {"username": "alice", "password": "alice-password-1"})
    check(status == 200 and login["token_type"] == "Bearer",
          "login over a client certificate: token_type stays Bearer (RFC 8705)")
    bound = login["access_token"]
    check(claims(bound).get("cnf") == {"x5t#S256": thumbprint(directory, "alice")},
          "the token carries cnf.x5t#S256 of the connection's certificate")
    welcome = await open_socket(base, directory, "alice", origin, token=bound)
    check(isinstance(welcome, dict) and welcome.get("sub") == "alice",
          "the bound token opens a socket beside its certificate")
    check(await open_socket(base, directory, "alice-2", origin, token=bound) == ("status", 401),
          "the bound token beside another certificate of the same name: 401")
    check(await open_socket(base, directory, None, origin, token=bound) == ("status", 401),
          "the bound token without a certificate: 401")

    # A ticket bought with the bound token is bound as the token is.
    status, ticket = post(base, directory, "alice", "/tickets", token=bound)
    check(status == 200, "a ticket bought with the bound token over its certificate")
    outcome = await open_socket(base, directory, "alice-2", origin, path=f"/ws?ticket={ticket['ticket']}")
    check(outcome == ("status", 401), "that ticket over another certificate: 401")
    status, ticket = post(base, directory, "alice", "/tickets", token=bound)
    welcome = await open_socket(base, directory, "alice", origin, path=f"/ws?ticket={ticket['ticket']}")
    check(isinstance(welcome, dict) and welcome.get("sub") == "alice", "and over its own certificate it opens")

    # Any other credential wins over the certificate; a bad one is refused.
    status, login = post(base, directory, None, "/login",
                         {"username": "admin", "password": "admin-password-1"})
    check(status == 200 and "cnf" not in claims(login["access_token"]),
          "login without a certificate issues an unbound token")
    welcome = await open_socket(base, directory, "alice", origin, token=login["access_token"])
    check(isinstance(welcome, dict) and welcome.get("sub") == "admin",
          "a token on the request wins over the connection's certificate")
    check(await open_socket(base, directory, "alice", origin, token="not-a-token") == ("status", 401),
          "an invalid token is refused, never rescued by the certificate")

    # A socket opened by a certificate closes when the certificate ends.
    short = short_lived(directory, 4)
    check(await close_of(base, directory, short, origin, 15) == (4401, "token expired"),
          "a certificate's socket closes 4401 when the certificate expires")

    # Revoking the subject closes its certificate sockets, and refuses the
    # certificates issued up to then.
    def revoke_alice():
        status, answer = post(base, directory, None, "/admin/revoke", {"sub": "alice"},
                              token=login["access_token"])
        check(status == 200 and answer["closed"] >= 1, f"admin revokes alice: {answer}")
    check(await close_of(base, directory, "alice", origin, 5, during=revoke_alice)
          == (4403, "token revoked"), "her certificate's live socket closes 4403 token revoked")
    check(await open_socket(base, directory, "alice", origin) == ("status", 401),
          "and her certificate is refused from then on (401)")

    if metrics:
        after = demo_smoke.scrape(metrics)
        moved = lambda key: after.get(key, 0.0) - before.get(key, 0.0)
        refused = sum(value for key, value in after.items()
                      if key.startswith("wsgate_tls_client_certificates_refused_total")) - sum(
            value for key, value in before.items()
            if key.startswith("wsgate_tls_client_certificates_refused_total"))
        check(refused >= len(REFUSED_AT_TLS), f"TLS refusals counted ({refused})")
        check(moved('wsgate_handshakes_total{outcome="allow",transport="certificate"}') >= 2,
              "certificate handshakes counted with transport certificate")
    print(f"{demo_smoke.checks} checks passed")


def main():
    if sys.argv[1] == "make-pki":
        make_pki(sys.argv[2])
    elif sys.argv[1] == "check":
        base, directory, origin = sys.argv[2], sys.argv[3], sys.argv[4]
        metrics = sys.argv[5] if len(sys.argv) > 5 else None
        asyncio.run(run_checks(base, directory, origin, metrics))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
