"""The explorer's routes: server-rendered pages (no JavaScript needed) and the same data under /api.

Every HTML page is a Jinja2 template with autoescaping on, rendering one dict from ``pages``; the
matching ``/api`` route returns that dict as JSON. Security headers go on every response: a
Content-Security-Policy that allows no script at all (nothing here needs one), no framing, no
sniffing, no referrer. Only GET and HEAD exist: the explorer never changes anything.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator
from urllib.parse import quote, urlencode

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from registry.errors import InputError, RegistryError
from registry.explorer import labels, pages
from registry.explorer.labels import alias_url, model_url, namespace_url
from registry.explorer.pages import NotFound

if TYPE_CHECKING:
    from registry.explorer.state import Explorer

HERE = Path(__file__).parent
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; "
       "frame-ancestors 'none'")
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}
IMAGE_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF87a", "image/gif"),
               (b"GIF89a", "image/gif"))
MAX_PLOT_BYTES = 8 * 1024 * 1024
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


# --------------------------------------------------------------------------------------------
# Template helpers
# --------------------------------------------------------------------------------------------


def _time(value: Any) -> str:
    if not value:
        return "-"
    try:
        return datetime.fromtimestamp(float(value), tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return "-"


def _bytes(value: Any) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(value)  # pragma: no cover


def _num(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _signed(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:+.4g}" if isinstance(value, float) else f"{value:+d}" if isinstance(value, int) else str(value)


def _plain(value: Any) -> str:
    """Untrusted text without control characters (autoescaping handles the markup)."""
    return _CONTROL.sub("\ufffd", str(value))


def release_url(name: str, version: str, suffix: str = "") -> str:
    return f"/models/{quote(name, safe='/')}/{quote(version, safe='')}{suffix}"


def render_card(card: dict[str, Any], ref: str) -> Any:
    """A signed card's body as safe HTML; its ``ipfs://`` images load from the release's plot route."""
    from registry.explorer.markdown import image_cids, render_card_body

    name, _, version = ref.rpartition("@")
    body = str(card.get("body") or "")
    allowed = {p.get("cid") for p in card.get("plots") or []} | set(image_cids(body))
    return render_card_body(body, lambda cid: release_url(name, version, "/plots/" + cid) if cid in allowed else None)


def _templates() -> Jinja2Templates:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, auto_reload=False)
    templates = Jinja2Templates(env=env)
    env.filters.update(time=_time, bytes=_bytes, num=_num, signed=_signed, plain=_plain,
                       short=lambda s, n=18: (s[:n] + "…") if isinstance(s, str) and len(s) > n + 1 else s)
    env.globals.update(release_url=release_url, model_url=model_url, alias_url=alias_url, namespace_url=namespace_url,
                       urlencode=urlencode, render_card=render_card,
                       diff_url=lambda a, b: "/diff?" + urlencode({"a": a, "b": b}))
    return templates


# --------------------------------------------------------------------------------------------
# The app
# --------------------------------------------------------------------------------------------


def create_app(ex: "Explorer", allowed_hosts: list[str] | None = None) -> Starlette:
    """The ASGI app over one ``Explorer``."""
    templates = _templates()

    def catalog_table(data: dict[str, Any]) -> Any:
        """The catalog's result table, rendered once per query until the index changes (rendering 50
        rows costs more than the search itself)."""
        from markupsafe import Markup

        key = ("catalog-table", repr(sorted(data["query"].items())))
        return ex.memo(key, lambda: Markup(templates.get_template("_catalog_table.html").render(data=data)))

    templates.env.globals["catalog_table"] = catalog_table

    def html(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
        return templates.TemplateResponse(request, name, {"data": context, "page": name}, status_code=status)

    def api(data: Any, status: int = 200) -> Response:
        return Response(json.dumps(data, default=_json_default, separators=(",", ":")), status_code=status,
                        media_type="application/json")

    def both(template: str, build: Callable[[Request], dict[str, Any]],
             index_only: bool = False) -> tuple[Callable[..., Any], Callable[..., Any]]:
        """An HTML route and its /api twin. Pages that read only the index (a few milliseconds of
        SQLite) run on the event loop; pages that call the chain or hash bytes run in the thread pool."""
        if index_only:
            async def page_async(request: Request) -> Response:
                return html(request, template, build(request))

            async def json_async(request: Request) -> Response:
                return api(build(request))

            return page_async, json_async

        def page(request: Request) -> Response:
            return html(request, template, build(request))

        def json_route(request: Request) -> Response:
            return api(build(request))

        return page, json_route

    # -- builders ------------------------------------------------------------------------------

    def build_catalog(request: Request) -> dict[str, Any]:
        query = pages.catalog_query(request.query_params, request.query_params.getlist("op"))
        return pages.catalog_page(ex, query)

    def _name(request: Request) -> str:
        return f"{request.path_params['owner']}/{request.path_params['model']}"

    def build_model(request: Request) -> dict[str, Any]:
        return pages.model_page(ex, _name(request))

    def _version(request: Request, suffix: str = "", api_prefix: str = "") -> str:
        label = request.path_params["label"]
        if pages.is_version_label(label):
            return label
        version = labels.resolve_label(ex, _name(request), label)
        raise pages.Redirect(api_prefix + release_url(_name(request), version, suffix))

    def build_release(request: Request) -> dict[str, Any]:
        prefix = "/api" if request.url.path.startswith("/api/") else ""
        return pages.release_page(ex, _name(request), _version(request, "", prefix))

    def build_lineage(request: Request) -> dict[str, Any]:
        prefix = "/api" if request.url.path.startswith("/api/") else ""
        return pages.lineage_page(ex, _name(request), _version(request, "/lineage", prefix))

    def build_diff(request: Request) -> dict[str, Any]:
        params = request.query_params
        return pages.diff_page(ex, (params.get("a") or "").strip()[:200] or None,
                               (params.get("b") or "").strip()[:200] or None)

    def build_alias(request: Request) -> dict[str, Any]:
        return labels.alias_page(ex, _name(request), request.path_params["alias"])

    def build_namespace(request: Request) -> dict[str, Any]:
        return labels.namespace_page(ex, request.path_params["owner"])

    catalog_html, catalog_json = both("catalog.html", build_catalog, index_only=True)
    namespace_html, namespace_json = both("namespace.html", build_namespace, index_only=True)
    model_html, model_json = both("model.html", build_model, index_only=True)
    alias_html, alias_json = both("alias.html", build_alias)
    release_html, release_json = both("release.html", build_release)
    lineage_html, lineage_json = both("lineage.html", build_lineage, index_only=True)
    diff_html, diff_json = both("diff.html", build_diff)

    async def status_json(request: Request) -> Response:
        return api(ex.status())

    def lineage_svg(request: Request) -> Response:
        data = build_lineage(request)
        body = templates.get_template("_graph.svg").render(layout=data["layout"], standalone=True)
        return Response(body, media_type="image/svg+xml")

    def car(request: Request) -> Response:
        version = _version(request, f"/{request.path_params['what']}.car")
        data = pages.release_page(ex, _name(request), version)
        record = data["record"]
        what = request.path_params["what"]
        cid_info = {"artifact": record.get("artifact_cid"), "provenance": record.get("provenance_cid"),
                    "card": record.get("card_cid")}.get(what)
        if not cid_info or not cid_info.get("hex"):
            raise NotFound(f"{data['ref']} has no {what}")
        return _car_response(ex, bytes.fromhex(cid_info["hex"][2:]), f"{data['ref']}.{what}.car")

    def plot(request: Request) -> Response:
        version = _version(request, f"/plots/{request.path_params['cid']}")
        data = pages.release_page(ex, _name(request), version)
        cid = request.path_params["cid"]
        if not pages.plot_allowed(data, cid):
            raise NotFound(f"{data['ref']}'s card lists no plot {cid}")
        try:
            raw = ex.store.get_bytes(cid, max_size=MAX_PLOT_BYTES)
        except RegistryError as exc:
            return Response(f"plot unavailable: {exc}", status_code=503, media_type="text/plain")
        media = next((m for magic, m in IMAGE_MAGIC if raw.startswith(magic)), None)
        if media is None:
            raise NotFound("that plot is not a PNG, JPEG or GIF image")
        return Response(raw, media_type=media, headers={"cache-control": "public, max-age=31536000, immutable"})

    routes = [
        Route("/", catalog_html, name="catalog"),
        Route("/api/models", catalog_json),
        Route("/api/status", status_json),
        Route("/diff", diff_html),
        Route("/api/diff", diff_json),
        Route("/models/{owner}", namespace_html),
        Route("/api/models/{owner}", namespace_json),
        Route("/models/{owner}/{model}", model_html),
        Route("/api/models/{owner}/{model}", model_json),
        Route("/models/{owner}/{model}/@{alias}", alias_html),
        Route("/api/models/{owner}/{model}/@{alias}", alias_json),
        Route("/models/{owner}/{model}/{label}", release_html),
        Route("/api/models/{owner}/{model}/{label}", release_json),
        Route("/models/{owner}/{model}/{label}/lineage", lineage_html),
        Route("/models/{owner}/{model}/{label}/lineage.svg", lineage_svg),
        Route("/api/models/{owner}/{model}/{label}/lineage", lineage_json),
        Route("/models/{owner}/{model}/{label}/{what:str}.car", car),
        Route("/models/{owner}/{model}/{label}/plots/{cid}", plot),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]

    def is_api(request: Request) -> bool:
        return request.url.path.startswith("/api/")

    def error(request: Request, status: int, title: str, message: str) -> Response:
        if is_api(request):
            return api({"error": message, "status": status}, status)
        return html(request, "error.html", {"title": title, "message": message, "status": status,
                                            "index": _safe_status(ex)}, status)

    async def not_found(request: Request, exc: Exception) -> Response:
        return error(request, 404, "Not found", str(exc) if isinstance(exc, NotFound) else "no such page")

    async def redirect(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, pages.Redirect)
        query = ("?" + request.url.query) if request.url.query else ""
        return RedirectResponse(exc.url + query, status_code=307 if is_api(request) else 302)

    async def unresolvable(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, pages.Unresolvable)
        if is_api(request):
            return api({"error": exc.message, "status": 409, "page": "/api" + exc.page}, 409)
        return html(request, "error.html", {"title": "Resolves to an error", "message": exc.message, "status": 409,
                                            "link": exc.page, "index": _safe_status(ex)}, 409)

    async def bad_input(request: Request, exc: Exception) -> Response:
        return error(request, 400, "Bad request", str(exc))

    async def registry_error(request: Request, exc: Exception) -> Response:
        code = 503 if getattr(exc, "exit_code", 0) == 15 else 502
        return error(request, code, "The chain or the store did not answer" if code == 503 else "Upstream error",
                     str(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return error(request, 404, "Not found", "no such page")
        return error(request, exc.status_code, "Error", str(exc.detail))

    async def server_error(request: Request, exc: Exception) -> Response:
        return error(request, 500, "Internal error", f"{type(exc).__name__}: the explorer hit a bug; the logs have it")

    class Guard:
        """Security headers on every response; anything but GET/HEAD is refused (read-only)."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await self.inner(scope, receive, send)
                return

            async def send_with_headers(message: Any) -> None:
                if message["type"] == "http.response.start":
                    headers = MutableHeaders(scope=message)
                    for key, value in SECURITY_HEADERS.items():
                        headers.setdefault(key, value)
                await send(message)

            if scope["method"] not in ("GET", "HEAD"):
                response = error(Request(scope), 405, "Method not allowed", "the explorer is read-only")
                response.headers["allow"] = "GET, HEAD"
                await response(scope, receive, send_with_headers)
                return
            await self.inner(scope, receive, send_with_headers)

    app = Starlette(
        routes=routes,
        middleware=[Middleware(Guard), Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts or ["*"])],
        exception_handlers={NotFound: not_found, pages.Redirect: redirect, pages.Unresolvable: unresolvable,
                            InputError: bad_input,
                            RegistryError: registry_error, HTTPException: http_error, 500: server_error},
    )
    app.state.explorer = ex
    return app


def _safe_status(ex: "Explorer") -> dict[str, Any] | None:
    try:
        return ex.status()
    except Exception:  # the error page must render even when the index itself is the problem
        return None


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if hasattr(value, "to_json"):
        return value.to_json()
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def _car_response(ex: "Explorer", cid: bytes, filename: str) -> Response:
    """A CAR v1 of the DAG under ``cid``, every block verified as it is read from the store."""
    from registry.content.car import encode_header, encode_section
    from registry.content.cids import parse_cid

    root = parse_cid(cid)
    iter_blocks = getattr(ex.store, "iter_blocks", None)
    if iter_blocks is None:
        return Response("this store cannot export CARs", status_code=501, media_type="text/plain")
    try:
        ex.store.get_block(root)  # fail before the 200 if the store does not have the root
    except RegistryError as exc:
        return Response(f"not available from the store: {exc}", status_code=503, media_type="text/plain")

    def chunks() -> Iterator[bytes]:
        yield encode_header([root])
        for block_cid, block in iter_blocks(root):
            yield encode_section(block_cid, block)

    safe = re.sub(r"[^A-Za-z0-9._@+-]", "_", filename)
    return StreamingResponse(chunks(), media_type="application/vnd.ipld.car",
                             headers={"content-disposition": f'attachment; filename="{safe}"'})
