"""The KMS port: an asymmetric key's public half, and signatures made
with it. :class:`BotoKms` is the real adapter (the sandbox's emulator signs
the same way); ``fakes.FakeKms`` keeps keys in memory."""

from __future__ import annotations

from typing import Protocol

from .aws import AwsSession


class Kms(Protocol):
    def public_key(self, key_id: str) -> tuple[bytes, str]:
        """The key's public half (DER) and its usage (SIGN_VERIFY, ...)."""

    def sign(self, key_id: str, message: bytes, algorithm: str) -> bytes:
        """The signature of ``message`` (RAW), as KMS returns it."""

    def ensure_key(self, alias: str) -> None:
        """An ECC_NIST_P256 SIGN_VERIFY key under ``alias``, made when missing
        (the sandbox's key, in its emulator)."""


class BotoKms:
    def __init__(self, aws: AwsSession, region: str) -> None:
        self.aws = aws
        self.region = region

    def _call(self, what: str, operation: str, **kwargs: object) -> dict:
        return self.aws.call(what, "kms", self.region, operation, **kwargs)

    def public_key(self, key_id: str) -> tuple[bytes, str]:
        found = self._call(f"KMS GetPublicKey on {key_id}", "get_public_key", KeyId=key_id)
        return found["PublicKey"], str(found.get("KeyUsage", "SIGN_VERIFY"))

    def sign(self, key_id: str, message: bytes, algorithm: str) -> bytes:
        return self._call(f"KMS Sign on {key_id}", "sign", KeyId=key_id, Message=message,
                          MessageType="RAW", SigningAlgorithm=algorithm)["Signature"]

    def ensure_key(self, alias: str) -> None:
        aliases = self._call("KMS ListAliases", "list_aliases").get("Aliases", [])
        if not any(a.get("AliasName") == alias for a in aliases):
            key = self._call("KMS CreateKey", "create_key", KeySpec="ECC_NIST_P256",
                             KeyUsage="SIGN_VERIFY",
                             Description="amis sandbox provenance")["KeyMetadata"]["KeyId"]
            self._call(f"KMS CreateAlias {alias}", "create_alias", AliasName=alias,
                       TargetKeyId=key)
