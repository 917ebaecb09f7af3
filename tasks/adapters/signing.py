"""Signing statements as DSSE envelopes, and checking them, with
securesystemslib (its Envelope, keys and signature checks; no crypto of
our own). A key is an asymmetric AWS KMS key (``AMI_SIGNING_KEY``: a key
id, ARN or alias; ECC_NIST_P256 or RSA) signed with through the run's own
KMS client, so the sandbox's emulator signs the same way; or a PEM private
key file (``AMI_SIGNING_KEY=file:<path>``) for people without KMS.
Verifying needs only the public key: KMS's, or a PEM file."""

from __future__ import annotations

import json
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..core.errors import FAILED, AmiError
from .kms import Kms

# securesystemslib's scheme -> the KMS signing algorithm that makes it
_KMS_ALGORITHMS = MappingProxyType({"ecdsa-sha2-nistp256": "ECDSA_SHA_256",
                                    "rsassa-pss-sha256": "RSASSA_PSS_SHA_256"})
FILE = "file:"
SANDBOX_KEY = "alias/amis-sandbox"     # made in the sandbox's emulator on first use


def _key_from_pem(pem: bytes, where: str) -> Any:
    from cryptography.hazmat.primitives import serialization
    from securesystemslib.signer import SSlibKey
    try:
        public = serialization.load_pem_public_key(pem)
    except ValueError:
        try:
            public = serialization.load_pem_private_key(pem, password=None).public_key()
        except (ValueError, TypeError):
            raise AmiError(f"{where}: not a PEM public or unencrypted private key") from None
    return SSlibKey.from_crypto(public, scheme=_scheme_of(public, where))


def _scheme_of(public: Any, where: str) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    if isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1":
        return "ecdsa-sha2-nistp256"
    if isinstance(public, rsa.RSAPublicKey):
        return "rsassa-pss-sha256"
    raise AmiError(f"{where}: only ECDSA P-256 and RSA keys are supported")


class KmsSigner:
    """A securesystemslib Signer whose ``sign`` is one KMS Sign call."""

    def __init__(self, key_id: str, kms: Kms) -> None:
        from cryptography.hazmat.primitives import serialization
        from securesystemslib.signer import SSlibKey
        self.key_id = key_id
        self._kms = kms
        der, usage = kms.public_key(key_id)
        if usage != "SIGN_VERIFY":
            raise AmiError(f"AMI_SIGNING_KEY={key_id}: a {usage} key; use an "
                           "asymmetric SIGN_VERIFY key, ECC_NIST_P256 or RSA")
        public = serialization.load_der_public_key(der)
        scheme = _scheme_of(public, f"AMI_SIGNING_KEY={key_id}")
        self.algorithm = _KMS_ALGORITHMS[scheme]
        self._public = SSlibKey.from_crypto(public, scheme=scheme)

    @property
    def public_key(self) -> Any:
        return self._public

    def sign(self, payload: bytes) -> Any:
        from securesystemslib.signer import Signature
        signed = self._kms.sign(self.key_id, payload, self.algorithm)
        return Signature(self._public.keyid, signed.hex())


def signer(setting: str, root: Path, kms: Kms, sandbox: bool = False) -> Any:
    """The signer ``AMI_SIGNING_KEY`` names; in the sandbox, SANDBOX_KEY is
    made in its emulator on first use."""
    if sandbox and setting == SANDBOX_KEY:
        kms.ensure_key(SANDBOX_KEY)
    if setting.startswith(FILE):
        from cryptography.hazmat.primitives import serialization
        from securesystemslib.signer import CryptoSigner
        path = (root / setting[len(FILE):]).resolve()
        try:
            private = serialization.load_pem_private_key(_key_file(path, f"AMI_SIGNING_KEY="
                                                                         f"{setting}"),
                                                         password=None)
        except OSError as err:
            raise AmiError(f"AMI_SIGNING_KEY={setting}: cannot read {path} ({err.strerror})") \
                from None
        except (ValueError, TypeError):
            raise AmiError(f"AMI_SIGNING_KEY={setting}: {path} is not an unencrypted PEM "
                           "private key") from None
        public = _key_from_pem(private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo), setting)
        return CryptoSigner(private, public)
    return KmsSigner(setting, kms)


def sign(payload: bytes, payload_type: str, with_: Any) -> bytes:
    """The DSSE envelope of ``payload``, as stored (JSON)."""
    from securesystemslib.dsse import Envelope
    envelope = Envelope(payload, payload_type, {})
    try:
        envelope.sign(with_)
    except AmiError as err:
        raise AmiError(f"signing the provenance failed: {err}", err.code) from None
    except Exception as err:                       # KMS refused, a key that cannot sign
        raise AmiError(f"signing the provenance failed ({type(err).__name__}: {err})",
                       FAILED) from None
    return (json.dumps(envelope.to_dict(), sort_keys=True, indent=2) + "\n").encode()


def public_key(setting: str, root: Path, kms: Kms, sandbox: bool = False) -> Any:
    """The key a signature is checked with: the PEM file ``file:<path>``
    names, else the KMS key's public half (kms:GetPublicKey). A KMS key id,
    ARN or alias is never read as a path, whatever the checkout holds there."""
    if setting.startswith(FILE):
        return pem_public_key(root / setting[len(FILE):], f"AMI_SIGNING_KEY={setting}")
    if sandbox and setting == SANDBOX_KEY:
        kms.ensure_key(SANDBOX_KEY)
    return KmsSigner(setting, kms).public_key


def pem_public_key(path: Path, what: str) -> Any:
    """A PEM public (or unencrypted private) key file's public key."""
    try:
        return _key_from_pem(_key_file(path, what), str(path))
    except OSError as err:
        raise AmiError(f"{what}: cannot read {path} ({err.strerror})") from None


MAX_KEY_BYTES = 64 << 10         # an RSA-4096 PEM key is about 3 KB


def _key_file(path: Path, what: str) -> bytes:
    """A key file's bytes: a regular file of a key's size, never a device
    or a FIFO that would be read forever."""
    import os
    import stat
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)      # a FIFO must not block the open
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_KEY_BYTES:
            raise AmiError(f"{what}: {path} is not a key file (a regular file under "
                           f"{MAX_KEY_BYTES // 1024} KB): name the PEM key file")
        return f.read(MAX_KEY_BYTES + 1)


def opened(envelope: bytes, key: Any, where: str) -> bytes:
    """The payload of an envelope whose signature ``key`` made; AmiError
    naming ``where`` otherwise."""
    from securesystemslib.dsse import Envelope
    from securesystemslib.exceptions import VerificationError
    try:
        parsed = Envelope.from_dict(json.loads(envelope))
    except (ValueError, KeyError, TypeError):
        raise AmiError(f"{where}: not a DSSE envelope", FAILED) from None
    try:
        parsed.verify([key], 1)
    except VerificationError as err:
        raise AmiError(f"{where}: the signature does not verify with key {key.keyid[:12]} "
                       f"({err})", FAILED) from None
    return parsed.payload
