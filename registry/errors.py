"""Every failure a user can cause is a ``RegistryError`` with a one-line message and an exit code.

The CLI prints ``error: <message>`` and exits with ``exit_code``; library callers catch the class
that matters to them. Exit codes are grouped by what the operator should do next, so scripts on a
device can branch on them without parsing text.
"""

from __future__ import annotations


class RegistryError(Exception):
    """Base class: a clear, user-facing failure (never a bug)."""

    exit_code: int = 1


class InputError(RegistryError):
    """Bad input the user can fix: a malformed name, version, file, CID, recipe or option."""

    exit_code = 3


class KeyAccessError(RegistryError):
    """A key could not be loaded: wrong password, unknown account, dev key off the local chain."""

    exit_code = 4


class UnreachableError(RegistryError):
    """An RPC endpoint, IPFS node, gateway or input source did not answer (after retries)."""

    exit_code = 15


class ChainError(RegistryError):
    """The chain refused: a decoded contract revert, wrong chain id, no contract at the address."""

    exit_code = 6


class IntegrityError(RegistryError):
    """Bytes do not match their digest, CID or size."""

    exit_code = 10


class SignatureError(RegistryError):
    """A signature does not recover to the publisher, or the publisher is not authorised."""

    exit_code = 11


class RevokedError(RegistryError):
    """The release (or a release it depends on) is revoked."""

    exit_code = 12


class ProvenanceError(RegistryError):
    """The provenance document is missing, altered, or describes another artifact."""

    exit_code = 13


class PolicyError(RegistryError):
    """The artifact is not acceptable: malformed ONNX, or a policy rule refuses it."""

    exit_code = 14


class StorageError(RegistryError):
    """A local write failed for a reason outside the input: the disk or quota is full, the file
    system is read-only or failing, or permission is denied. The message names what filled up
    (data dir, block store, pull target, manifest directory) and what state things were left in."""

    exit_code = 16


class CompressionError(RegistryError):
    """A compression run could not meet its recipe (for example an accuracy tolerance)."""

    exit_code = 7
