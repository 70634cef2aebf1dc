"""Labels and owners in URLs: ``/models/NAME/latest`` and ``/models/NAME/ALIAS`` redirect to the
version the chain resolves them to, ``/models/NAME/@ALIAS`` is the alias's own page (where it points,
whether it resolves, every move) and ``/models/NAMESPACE`` the namespace's (owner, transfers, models).

The chain answers first, so a link never leads somewhere ``registry verify NAME@ALIAS`` would not
go: an alias whose target was revoked later, or whose publisher may no longer publish the name (D4),
is a 409 page that says why, never the release it used to mean. The index answers only while the
chain is down, under the same rules (and the pages say the chain did not answer).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from registry.chain.errors import ContractRevert
from registry.errors import ChainError, InputError, RegistryError, RevokedError, SignatureError, UnreachableError
from registry.explorer.pages import NotFound, Unresolvable, _valid_name
from registry.index import names, queries

if TYPE_CHECKING:
    from registry.explorer.state import Explorer
    from registry.release import Ref


@dataclass(frozen=True)
class Resolution:
    """What the chain says a reference means. ``state``: ``resolves`` (to ``version``), ``refused``
    (it exists but resolves to an error: revoked target, removed publisher, a label that is not
    SemVer), ``unknown`` (no such alias, no valid release) or ``unreachable``."""

    state: str
    version: str | None = None
    message: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def model_url(name: str) -> str:
    return f"/models/{quote(name, safe='/')}"


def alias_url(name: str, alias: str) -> str:
    return f"{model_url(name)}/@{quote(alias, safe='')}"


def namespace_url(namespace: str) -> str:
    return "/models/" + quote(namespace, safe="")


def on_chain(ex: "Explorer", ref: "Ref") -> Resolution:
    """The chain's answer for ``ref`` through the one resolver every command uses."""
    client = ex.client()
    if client is None:
        return Resolution("unreachable", message=ex.client_error or "chain not reachable")
    try:
        return Resolution("resolves", version=client.resolve(ref).version)
    except (RevokedError, SignatureError) as exc:
        return Resolution("refused", message=str(exc))
    except ContractRevert as exc:  # UnknownAlias, NoActiveRelease
        return Resolution("unknown", message=str(exc))
    except UnreachableError as exc:
        return Resolution("unreachable", message=str(exc))
    except ChainError as exc:  # e.g. a target labelled with something that is not SemVer
        return Resolution("refused", message=str(exc))
    except RegistryError as exc:
        return Resolution("unreachable", message=str(exc))


def resolve_label(ex: "Explorer", name: str, label: str) -> str:
    """``latest`` or an alias -> the version it points at (the page then redirects there)."""
    from registry.release import parse_ref

    _valid_name(name)
    try:
        ref = parse_ref(f"{name}@{label}")
    except InputError as exc:
        raise NotFound(f"no release {name}@{label[:80]}: {exc}") from exc
    answer = on_chain(ex, ref)
    page = alias_url(name, label) if ref.kind == "alias" else model_url(name)
    if answer.state == "resolves":
        assert answer.version is not None
        return answer.version
    if answer.state == "unknown":
        raise NotFound(f"{name}@{label} does not resolve on chain: {answer.message}")
    if answer.state == "refused":
        raise Unresolvable(f"{answer.message}. Verify, pull and oracle nodes refuse {name}@{label} too, until its "
                           "owner points it at a release that counts.", page)
    return _from_index(ex, name, ref, page)


def _from_index(ex: "Explorer", name: str, ref: "Ref", page: str) -> str:
    """The index's answer while the chain is down: the same rules, from the events it has seen."""
    conn = ex.db()
    if ref.kind == "latest":
        model = queries.model(conn, name)
        if model is None or model["latest"] is None:
            raise NotFound(f"{name} has no release that counts in the index (the chain does not answer)")
        return str(model["latest"])
    assert ref.alias is not None
    found = names.alias(conn, name, ref.alias)
    current = found["current"] if found else None
    if current is None:
        raise NotFound(f"{name} has no alias {ref.alias!r} in the index (the chain does not answer)")
    if current["version"] is None:
        raise NotFound(f"{name}@{ref.alias} points at a release the index does not know")
    if not current["resolves"]:
        why = "was revoked" if current["revoked"] else "was published by an account that may no longer publish it"
        raise Unresolvable(f"{name}@{ref.alias} points at {current['version']}, which {why}: it resolves to an "
                           "error (from the index; the chain does not answer)", page)
    return str(current["version"])


def alias_page(ex: "Explorer", name: str, alias: str) -> dict[str, Any]:
    """Where ``name@alias`` points (index), whether it resolves (chain), and every move (index)."""
    from registry.release import Ref, is_valid_alias

    _valid_name(name)
    if not is_valid_alias(alias):
        raise NotFound(f"{alias[:80]!r} is not an alias ([a-z][a-z0-9-]{{0,31}}, not 'latest')")
    indexed = names.alias(ex.db(), name, alias)
    answer = on_chain(ex, Ref(kind="alias", name=name, alias=alias))
    if indexed is None and answer.state in ("unknown", "unreachable"):
        raise NotFound(f"{name} has no alias {alias!r}")
    data = indexed or {"name": name, "alias": alias, "ref": f"{name}@{alias}", "current": None, "history": []}
    data["chain"] = answer.to_json()
    data["status"] = ex.status()
    return data


def namespace_page(ex: "Explorer", namespace: str) -> dict[str, Any]:
    from registry.release import is_valid_namespace

    if not is_valid_namespace(namespace):
        raise NotFound(f"{namespace[:80]!r} is not a namespace")
    data = names.namespace(ex.db(), namespace)
    if data is None:
        raise NotFound(f"the index has never seen namespace {namespace}")
    data["status"] = ex.status()
    return data
