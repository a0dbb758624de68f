"""Request bodies limited before they are read: an ASGI middleware on Gradio's app.

Gradio reads an API call's JSON body whole and parses it before anything of ours sees it, so a
200 MB body cost 700 MB of memory before its 5 MB text was refused. Here a POST's declared size
(Content-Length) is checked before a byte is read, and the bytes that arrive are counted, so a
body that lies about its size or streams without one is cut off at the limit too.

Uploads (``/gradio_api/upload``) have their own limit (each file also has Gradio's
``max_file_size``), and take their room in the temp store before they are read
(:meth:`musicgen_app.actions.tempfiles.TempStore.reserved`): a full store refuses the upload with
503, never by removing someone's results. Installed with ``launch(app_kwargs={"middleware": ...})``
(FastAPI's ``middleware`` argument, Starlette's ``Middleware`` wrapper).
"""

from __future__ import annotations

import functools
import json

import anyio
from starlette.middleware import Middleware

from ..actions.tempfiles import StoreFull, TempStore
from ..io.importer import MAX_BYTES
from ..io.sandbox import ShuttingDown

# an API call or MCP tool call: 5 MB of typed notes, or a 5 MB file as a base64 data: URL, and the rest
API_MAX_BYTES = 4 * MAX_BYTES // 3 + 2**20
# one upload request: up to 20 files of Gradio's max_file_size ("More like these" takes 20 clips)
UPLOAD_MAX_BYTES = 20 * MAX_BYTES + 2**20
UPLOAD_PATH = "/gradio_api/upload"


class BodyLimit:
    """Refuse a POST body over its limit with 413 before reading it (or as soon as it is over)."""

    def __init__(self, app, store: TempStore, api_max: int = API_MAX_BYTES, upload_max: int = UPLOAD_MAX_BYTES):
        self.app, self.store, self.api_max, self.upload_max = app, store, api_max, upload_max

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        upload = scope["path"].endswith(UPLOAD_PATH)
        limit = self.upload_max if upload else self.api_max
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            return await _refuse(send, 413, _too_big(limit, upload))
        if not upload:
            return await self._limited(scope, receive, send, limit)
        try:  # in a worker thread: it may wait for requests that are writing to release their room
            ticket = await anyio.to_thread.run_sync(functools.partial(
                self.store.reserve_bytes, declared if declared is not None else limit, "this upload", self.store.wait))
        except (StoreFull, ShuttingDown) as exc:
            return await _refuse(send, 503, str(exc))
        try:
            return await self._limited(scope, receive, send, limit)
        finally:
            self.store.release(ticket)

    async def _limited(self, scope, receive, send, limit: int):
        seen, refused, started = 0, False, False

        async def counted_receive():
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit and not refused:
                    refused = True
                    if not started:
                        await _refuse(send, 413, _too_big(limit, scope["path"].endswith(UPLOAD_PATH)))
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            nonlocal started
            if refused:  # we answered already; what the app says after the cut-off is dropped
                return
            started = True
            await send(message)

        await self.app(scope, counted_receive, guarded_send)


def middleware(store: TempStore) -> list[Middleware]:
    """For ``launch(app_kwargs={"middleware": middleware(store)})``."""
    return [Middleware(BodyLimit, store=store)]


def _content_length(scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _too_big(limit: int, upload: bool) -> str:
    if upload:
        return (f"The upload is over {limit // 2**20} MB; upload fewer files at once (each at most "
                f"{MAX_BYTES // 2**20} MB).")
    return (f"The request is over {limit // 2**20} MB; type shorter notes, or upload the file "
            "(POST /gradio_api/upload) and pass its path instead of the file's contents.")


async def _refuse(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
