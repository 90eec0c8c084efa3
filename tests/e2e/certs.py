"""Test certificates, made with the openssl command line (as an operator would): a CA, a
server certificate for 127.0.0.1/localhost, a client certificate, a second CA that signed
nothing of the server's, and an expired server certificate. Used by test_security.py."""
import os
import subprocess


def _run(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _key(name, cwd):
    _run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", f"{name}.key", cwd=cwd)


def _ca(name, cwd):
    _key(name, cwd)
    _run("req", "-x509", "-new", "-key", f"{name}.key", "-out", f"{name}.pem", "-days", "3",
         "-subj", f"/CN={name}", cwd=cwd)


_CA_CONF = """
[ ca ]
default_ca = ca_default
[ ca_default ]
dir = .
database = {db}
new_certs_dir = {out}
serial = {serial}
default_md = sha256
policy = anything
copy_extensions = copy
unique_subject = no
[ anything ]
commonName = supplied
[ ext_server ]
subjectAltName = IP:127.0.0.1,DNS:localhost
extendedKeyUsage = serverAuth
[ ext_client ]
extendedKeyUsage = clientAuth
"""


def _issue(ca, name, cn, ext, cwd, start=None, end=None, days=2):
    """Signs a new key's certificate with `ca` (openssl ca: explicit validity dates)."""
    _key(name, cwd)
    _run("req", "-new", "-key", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=cwd)
    db, out, serial = f"{ca}.db", f"{ca}.certs", f"{ca}.serial"
    if not os.path.exists(os.path.join(cwd, db)):
        open(os.path.join(cwd, db), "w").close()
        os.makedirs(os.path.join(cwd, out), exist_ok=True)
        with open(os.path.join(cwd, serial), "w") as f:
            f.write("1000\n")
    with open(os.path.join(cwd, f"{ca}.cnf"), "w") as f:
        f.write(_CA_CONF.format(db=db, out=out, serial=serial))
    dates = ["-startdate", start, "-enddate", end] if start else ["-days", str(days)]
    _run("ca", "-batch", "-config", f"{ca}.cnf", "-cert", f"{ca}.pem", "-keyfile", f"{ca}.key",
         "-in", f"{name}.csr", "-out", f"{name}.pem", "-extensions", ext, "-notext", *dates, cwd=cwd)


def make_pki(directory):
    """Writes the files into `directory` and returns their paths by role."""
    os.makedirs(directory, exist_ok=True)
    _ca("ca", directory)
    _ca("other-ca", directory)
    _issue("ca", "server", "alignd", "ext_server", directory)
    _issue("other-ca", "renewed", "alignd", "ext_server", directory)  # a new issuer: visible to clients
    _issue("ca", "expired", "alignd", "ext_server", directory, start="20200101000000Z", end="20200102000000Z")
    _issue("ca", "client", "alice", "ext_client", directory)
    _issue("other-ca", "stranger", "mallory", "ext_client", directory)
    _issue("ca", "client-expired", "alice", "ext_client", directory, start="20200101000000Z",
           end="20200102000000Z")
    p = lambda n: os.path.join(directory, n)  # noqa: E731
    return {
        "ca": p("ca.pem"), "other_ca": p("other-ca.pem"),
        "server_cert": p("server.pem"), "server_key": p("server.key"),
        "renewed_cert": p("renewed.pem"), "renewed_key": p("renewed.key"),
        "expired_cert": p("expired.pem"), "expired_key": p("expired.key"),
        "client_cert": p("client.pem"), "client_key": p("client.key"),
        "stranger_cert": p("stranger.pem"), "stranger_key": p("stranger.key"),
        "client_expired_cert": p("client-expired.pem"), "client_expired_key": p("client-expired.key"),
    }
