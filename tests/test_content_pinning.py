"""PinningService against a local server that follows the IPFS Pinning Service API."""

from __future__ import annotations

import pytest

from registry.content.pinning import PinningService
from registry.content.unixfs import import_bytes
from registry.errors import IntegrityError, InputError, KeyAccessError, UnreachableError

from tests._content_fixtures import FakePinning

CID = import_bytes(b"model").cid


@pytest.fixture
def svc():
    server = FakePinning()
    yield server
    server.close()


@pytest.fixture
def client(svc):
    c = PinningService(svc.url, FakePinning.TOKEN, timeout=5.0, retries=1, backoff=0.01)
    yield c
    c.close()


def test_pin_goes_queued_pinning_pinned(svc, client):
    st = client.add(CID, name="acme/model@1.0.0")
    assert st.status == "queued"
    final = client.wait(st.requestid, poll=0.01)
    assert final.status == "pinned" and final.cid == str(CID)
    assert client.has(CID)
    assert [p.requestid for p in client.list(CID)] == [st.requestid]
    client.remove(st.requestid)
    assert not client.has(CID)
    assert all(h for h in svc.requests)


def test_pin_helper_waits(svc, client):
    assert client.pin(CID, poll=0.01).status == "pinned"


def test_failed_pin_is_reported(svc, client):
    svc.mode = "fail"
    with pytest.raises(UnreachableError, match="failed to pin .*content not found"):
        client.pin(CID, poll=0.01)


def test_stuck_pin_times_out(svc, client):
    svc.mode = "stuck"
    with pytest.raises(UnreachableError, match="still queued"):
        client.pin(CID, timeout=0.05, poll=0.01)


def test_answer_for_another_cid_is_refused(svc, client):
    svc.mode = "wrong-cid"
    with pytest.raises(IntegrityError, match="answered for"):
        client.add(CID)


def test_bad_token(svc):
    c = PinningService(svc.url, "wrong", retries=0)
    with pytest.raises(KeyAccessError, match="refused the access token"):
        c.add(CID)
    assert "wrong" not in repr(c)
    with pytest.raises(KeyAccessError, match="needs an access token"):
        PinningService(svc.url, "")


def test_unknown_request(client):
    with pytest.raises(InputError, match="not found"):
        client.status("req-999")
