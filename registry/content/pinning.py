"""The IPFS Pinning Service API: ask a remote service to keep a CID alive, and follow its status.

A pin request moves ``queued -> pinning -> pinned`` (or ``failed``). The service stores no bytes
for us to read back, so this is not a full ``ContentStore``: it pins what a Kubo node or the
local store (exported as CAR, or reachable through ``origins``) already holds. The bearer token is
kept out of every message and repr.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from multiformats import CID

from registry.content.cids import parse_cid, to_v1_text
from registry.content.http import HttpError, RetryPolicy, make_client, read_limited, request
from registry.errors import InputError, IntegrityError, KeyAccessError, UnreachableError
from registry.provenance import parse_json_strict

STATUSES = ("queued", "pinning", "pinned", "failed")


@dataclass(frozen=True)
class PinStatus:
    requestid: str
    status: str
    cid: str
    name: str | None = None
    created: str | None = None
    delegates: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, obj: Any, what: str) -> "PinStatus":
        try:
            status = obj["status"]
            pin = obj["pin"]
            if status not in STATUSES:
                raise ValueError(f"unknown status {status!r}")
            if not isinstance(obj["requestid"], str) or not obj["requestid"]:
                raise ValueError("no requestid")
            return cls(
                requestid=obj["requestid"],
                status=status,
                cid=str(pin["cid"]),
                name=pin.get("name"),
                created=obj.get("created"),
                delegates=list(obj.get("delegates") or []),
                info=dict(obj.get("info") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"{what}: malformed PinStatus from the pinning service ({exc})") from exc


def refuse_plain_http(url: str) -> None:
    """The bearer token travels only over https://, or plain http:// to this machine (loopback)."""
    import ipaddress
    from urllib.parse import urlsplit

    parts = urlsplit(url.strip())
    if parts.scheme == "https":
        return
    if parts.scheme != "http":
        raise InputError(f"pinning service URL {url[:80]!r} is not http(s)")
    host = (parts.hostname or "").strip("[]")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise KeyAccessError(f"refusing to send the pinning token over plain http:// to {host or url[:80]!r}; "
                             "use https:// (plain http is allowed to loopback only)")


class PinningService:
    """A client for one pinning service endpoint (``/pins``), authenticated by a bearer token."""

    def __init__(self, url: str, token: str, timeout: float = 10.0, retries: int = 3, backoff: float = 0.25,
                 transport: httpx.BaseTransport | None = None) -> None:
        if not token:
            raise KeyAccessError("the pinning service needs an access token (REGISTRY_PINNING_TOKEN)")
        refuse_plain_http(url)
        self.url = url.rstrip("/")
        self.policy = RetryPolicy(retries, backoff, timeout)
        self._client = make_client(self.url, self.policy, headers={"Authorization": f"Bearer {token}"},
                                   transport=transport)

    def __repr__(self) -> str:
        return f"PinningService({self.url!r})"

    def close(self) -> None:
        self._client.close()

    def _call(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        try:
            with request(self._client, self.policy, what, method, path, lambda: dict(kwargs)) as resp:
                body = read_limited(resp, 4 << 20, what, self.policy.deadline_s)
        except HttpError as exc:
            if exc.status in (401, 403):
                raise KeyAccessError(f"{what}: the pinning service refused the access token ({exc.message})") from exc
            if exc.status == 404:
                raise InputError(f"{what}: not found ({exc.message})") from exc
            raise UnreachableError(f"{what} refused: {exc}") from exc
        if not body.strip():
            return None
        try:
            return parse_json_strict(body, what=what, limit=4 << 20, error=IntegrityError)
        except IntegrityError as exc:
            raise IntegrityError(f"{what}: the pinning service answered something that is not JSON ({exc})") from exc

    def add(self, cid: CID | str | bytes, name: str | None = None, origins: tuple[str, ...] = (),
            meta: dict[str, str] | None = None) -> PinStatus:
        c = parse_cid(cid)
        payload: dict[str, Any] = {"cid": str(c)}
        if name:
            payload["name"] = name
        if origins:
            payload["origins"] = list(origins)
        if meta:
            payload["meta"] = meta
        what = f"pin request for {c}"
        status = PinStatus.parse(self._call("POST", "/pins", what, json=payload), what)
        self._same_cid(status, c, what)
        return status

    def status(self, requestid: str) -> PinStatus:
        what = f"pin status {requestid}"
        return PinStatus.parse(self._call("GET", f"/pins/{requestid}", what), what)

    def list(self, cid: CID | str | bytes | None = None, status: tuple[str, ...] = STATUSES,
             limit: int = 100) -> list[PinStatus]:
        params: dict[str, str] = {"status": ",".join(status), "limit": str(limit)}
        if cid is not None:
            params["cid"] = str(parse_cid(cid))
        what = "pin list"
        body = self._call("GET", "/pins", what, params=params)
        if not isinstance(body, dict) or not isinstance(body.get("results"), list):
            raise IntegrityError(f"{what}: malformed answer from the pinning service")
        return [PinStatus.parse(r, what) for r in body["results"]]

    def remove(self, requestid: str) -> None:
        self._call("DELETE", f"/pins/{requestid}", f"pin removal {requestid}")

    def wait(self, requestid: str, timeout: float = 300.0, poll: float = 2.0) -> PinStatus:
        """Polls until ``pinned`` (returned) or ``failed``/timeout (UnreachableError)."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.status(requestid)
            if st.status == "pinned":
                return st
            if st.status == "failed":
                reason = st.info.get("status_details") or st.info or "no reason given"
                raise UnreachableError(f"the pinning service failed to pin {st.cid}: {reason}")
            if time.monotonic() >= deadline:
                raise UnreachableError(f"the pinning service did not pin {st.cid} within {timeout:.0f}s "
                                       f"(still {st.status})")
            time.sleep(poll)

    def pin(self, cid: CID | str | bytes, name: str | None = None, origins: tuple[str, ...] = (),
            timeout: float = 300.0, poll: float = 2.0) -> PinStatus:
        """Requests a pin and waits until the service reports it pinned."""
        c = parse_cid(cid)
        st = self.add(c, name, origins)
        if st.status != "pinned":
            st = self.wait(st.requestid, timeout, poll)
        self._same_cid(st, c, f"pin of {c}")
        return st

    def has(self, cid: CID | str | bytes) -> bool:
        """Whether the service reports the CID pinned."""
        return bool(self.list(cid, status=("pinned",), limit=1))

    @staticmethod
    def _same_cid(status: PinStatus, cid: CID, what: str) -> None:
        try:
            same = to_v1_text(parse_cid(status.cid)) == to_v1_text(cid)
        except InputError:
            same = False
        if not same:
            raise IntegrityError(f"{what}: the pinning service answered for {status.cid}, not {cid}")
