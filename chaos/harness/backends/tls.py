"""TLS for the harness's clusters: a temporary self-signed set-up, written to files.

A scheduler port without TLS lets anyone who can reach it run code on every worker
(the harness itself runs functions on nannies). `temporary_tls(folder)` makes one
self-signed key and certificate (Dask's `Security.temporary`), writes them to
`folder` (mode 0600, for the `dask scheduler` / `dask worker` command lines) and returns
the files and the client's `Security`. `tls_from_files` is the same for certificate
files an existing cluster was started with.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from distributed.security import Security

from chaos.errors import ClusterError


@dataclass(frozen=True)
class TlsFiles:
    """The PEM files of one TLS set-up: the CA that signs, and this party's key pair."""

    ca_file: Path
    cert: Path
    key: Path

    def cli_flags(self) -> list[str]:
        """The `dask scheduler` / `dask worker` options that use these files."""
        return ["--tls-ca-file", str(self.ca_file), "--tls-cert", str(self.cert),
                "--tls-key", str(self.key)]

    def security(self) -> Security:
        """A client's Security: encryption required, this key pair, this CA."""
        return tls_from_files(self.ca_file, self.cert, self.key)


def temporary_tls(folder: Path) -> TlsFiles:
    """A fresh self-signed set-up in `folder`; needs the `cryptography` package."""
    try:
        temporary = Security.temporary()
    except ImportError as error:
        raise ClusterError(
            f"TLS needs the `cryptography` package ({error}); `pip install cryptography` "
            "(the `deploy` extra has it), or pass --no-tls to run over plain TCP."
        ) from None
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    files = TlsFiles(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
    for path, text in ((files.ca_file, temporary.tls_ca_file),
                       (files.cert, temporary.tls_scheduler_cert),
                       (files.key, temporary.tls_scheduler_key)):
        path.write_text(text, encoding="ascii")
        os.chmod(path, 0o600)
    return files


def tls_from_files(ca_file: str | os.PathLike[str], cert: str | os.PathLike[str],
                   key: str | os.PathLike[str]) -> Security:
    """A client's Security from certificate files; ClusterError naming a missing one."""
    for flag, path in (("--tls-ca-file", ca_file), ("--tls-cert", cert), ("--tls-key", key)):
        if not Path(path).is_file():
            raise ClusterError(f"{flag} {os.fspath(path)!r}: no such file; pass the PEM file "
                               "the cluster's scheduler and workers were started with.")
    return Security(tls_ca_file=os.fspath(ca_file), tls_client_cert=os.fspath(cert),
                    tls_client_key=os.fspath(key), require_encryption=True)
