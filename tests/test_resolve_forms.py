"""Each reference form resolves to exactly the release it names, and each refusal says what a user
needs to act on it (which bytes, which releases, why), on a real chain."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from registry.errors import ChainError, RevokedError

from tests.test_resolve import fake


def test_name_at_version_is_that_release_not_the_newest(deployed: Any) -> None:
    client = deployed.client
    owner = deployed.accounts[1]
    client.claim_namespace("acme", owner)
    old = client.sign_and_publish(fake("acme/model", "1.0.0"), owner)
    new = client.sign_and_publish(fake("acme/model", "2.0.0"), owner)
    assert client.resolve("acme/model@1.0.0") == old
    assert client.resolve("acme/model@2.0.0") == new
    assert client.resolve("acme/model@latest") == new
    with pytest.raises(ChainError):
        client.resolve("acme/model@3.0.0")


def test_unknown_bytes_name_the_digest_they_looked_for(deployed: Any) -> None:
    digest = secrets.token_bytes(32)
    with pytest.raises(ChainError, match=f"no release has artifact sha256:{digest.hex()}$"):
        deployed.client.resolve("sha256:" + digest.hex())


def test_revoked_bytes_list_at_most_five_releases_with_their_reasons(deployed: Any) -> None:
    client = deployed.client
    owner = deployed.accounts[1]
    client.claim_namespace("acme", owner)
    shared = secrets.token_bytes(32)
    records = [client.sign_and_publish(fake("acme/model", f"1.{i}.0", shared), owner) for i in range(6)]
    for index, record in enumerate(records):
        client.revoke(record.id, "" if index == 5 else f"reason {index}", owner)
    with pytest.raises(RevokedError) as caught:
        client.resolve("sha256:" + shared.hex())
    message = str(caught.value)
    assert "revoked in 6 release(s)" in message
    assert message.startswith(f"the bytes sha256:{shared.hex()[:16]}… were revoked")
    # Newest first: 1.5.0 (no reason given) down to 1.1.0; 1.0.0 is the sixth and is not listed.
    assert message.endswith(": acme/model@1.5.0 (no reason given), acme/model@1.4.0 (reason 4), "
                            "acme/model@1.3.0 (reason 3), acme/model@1.2.0 (reason 2), acme/model@1.1.0 (reason 1)")
    assert "1.0.0" not in message
