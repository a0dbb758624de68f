"""Start the melody studio: load the models once, build the page (musicgen_app/web/page.py), serve it.

    python app.py [--host 127.0.0.1] [--port 7860] [--debug-model] [--no-mcp] [--replicas N [--ray-address auto]]

The page is at http://HOST:PORT/, the HTTP API beside it, and the MCP server (the API's three actions
as tools, streamable HTTP) at http://HOST:PORT/gradio_api/mcp/ unless --no-mcp.

Environment: MUSICGEN_HOST, MUSICGEN_PORT, MUSICGEN_DEBUG_MODEL=1, MUSICGEN_MCP=0, MUSICGEN_CONCURRENCY,
MUSICGEN_QUEUE_POLL_MS, MUSICGEN_TEMP_MAX_MB (the temp store's size cap, default 1024), MUSICGEN_REPLICAS,
MUSICGEN_RAY_ADDRESS.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib.util
import logging
import os
import signal
import sys
import threading


def main(argv=None) -> None:
    env = os.environ
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default=env.get("MUSICGEN_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(env.get("MUSICGEN_PORT", "7860")))
    p.add_argument("--debug-model", action="store_true", default=env.get("MUSICGEN_DEBUG_MODEL") == "1",
                   help="a tiny random model instead of checkpoints/*.safetensors (for tests)")
    # Requests in progress at once. Their model work is stepped together by one engine thread
    # (service/engine.py), so more of them in flight means bigger, cheaper steps; what runs in their
    # own threads (priming, rendering, files) is short. One torch thread each.
    p.add_argument("--concurrency", type=int, default=int(env.get("MUSICGEN_CONCURRENCY", "16")))
    p.add_argument("--replicas", type=int, default=int(env.get("MUSICGEN_REPLICAS", "0")),
                   help="run the models on N Ray Serve replicas (needs requirements-ray.txt); 0: in this process")
    p.add_argument("--ray-address", default=env.get("MUSICGEN_RAY_ADDRESS", ""),
                   help="with --replicas: an existing Ray cluster ('auto' on one of its machines); "
                        "empty: a local Ray on 127.0.0.1")
    p.add_argument("--queue-poll-ms", type=float, default=float(env.get("MUSICGEN_QUEUE_POLL_MS", "10")),
                   help="how often Gradio's queue looks for work while it has none to start (its own: 1 ms)")
    p.add_argument("--mcp", action=argparse.BooleanOptionalAction, default=env.get("MUSICGEN_MCP", "1") != "0",
                   help="serve the API's actions as MCP tools at /gradio_api/mcp/ (default on; MUSICGEN_MCP=0: off)")
    args = p.parse_args(argv)
    if args.replicas < 0:
        p.error(f"--replicas must be 0 (the models in this process) or more, not {args.replicas}")
    if args.replicas and importlib.util.find_spec("ray") is None:
        p.error("--replicas needs Ray Serve: pip install -r requirements-ray.txt (or make run REPLICAS=N)")
    if args.mcp and importlib.util.find_spec("mcp") is None:
        p.error("the MCP server needs the `mcp` package: run scripts/setup.sh (or pip install -r requirements.txt), "
                "or start with --no-mcp")
    _fewer_malloc_arenas()
    # Our own notes (a refused upload, a stopped parse) as one line each; libraries stay at warnings.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("musicgen_app").setLevel(logging.INFO)

    from musicgen_app.actions.tempfiles import TempStore

    store = TempStore()  # also removes the folders of earlier runs that were killed
    # SIGTERM (systemd, docker stop, kill) exits like Ctrl-C does, so the store's folder is removed;
    # once the page is served, web/lifecycle.py stops in order instead.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # Gradio's cache is our temp folder: outputs are served where they are written, nothing else.
    env.setdefault("GRADIO_TEMP_DIR", str(store.root))
    env.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

    # Imported only now: gradio reads GRADIO_TEMP_DIR when it is imported.
    import torch

    from musicgen_app import render
    from musicgen_app.io import sandbox
    from musicgen_app.io.importer import MAX_BYTES
    from musicgen_app.models import style
    from musicgen_app.service import MelodyService
    from musicgen_app.web import body_limit, lifecycle, page
    from musicgen_app.web.api_sessions import lazy_session_configs
    from musicgen_app.web.mcp_adapter import adapt_mcp_server
    from musicgen_app.web.queue_adapter import checked_inputs, counted_events, quieter_queue

    # One torch thread: sampling is a chain of small matrix products where a second thread costs
    # more than it gives; the engine batches requests' rows instead.
    torch.set_num_threads(1)
    if args.replicas > 0:
        service = _replicated(args)
    else:
        service = MelodyService.debug() if args.debug_model else MelodyService.from_checkpoints()
    render.warm_up()
    # the optimiser's first use (1.5 s), so the first "More like these" fit is not the slow one; in
    # the background, as nobody fits a style in the first seconds
    threading.Thread(target=style.warm_up, name="style-warm-up", daemon=True).start()
    sandbox.warm_up()  # the parser process, so the first upload is not the slow one
    demo = page.build_ui(service, store, concurrency_limit=args.concurrency)
    demo.queue(default_concurrency_limit=args.concurrency, max_size=256)
    quieter_queue(demo, args.queue_poll_ms / 1000)
    checked_inputs(demo, {"continue", "interpolate", "generate"})
    counted_events(demo)
    lazy_session_configs()
    demo.launch(server_name=args.host, server_port=args.port, max_file_size=MAX_BYTES,
                show_error=True, css=page.CSS, footer_links=["api"], run_history=False, ssr_mode=False,
                mcp_server=args.mcp, prevent_thread_lock=True, blocked_paths=store.private,
                app_kwargs={"middleware": body_limit.middleware(store)})
    lifecycle.stop_on_signals(store)
    adapt_mcp_server(demo, store.out)  # Gradio makes its MCP server in launch
    demo.block_thread()


def _fewer_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives each thread that allocates at once an arena of its own (up to 8 a core) and keeps
    what they free: with 16 requests at once the server's memory grew by about 250 MB more than
    with 2 arenas, which cost no speed (bench/bench_soak.py --clients 16, docs/benchmarks.md).
    MALLOC_ARENA_MAX, when set, wins; elsewhere than glibc nothing happens."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(-8, arenas)  # M_ARENA_MAX


def _replicated(args):
    """The models on ``args.replicas`` Ray Serve replicas (musicgen_app/deploy/ray_serve.py); the
    page renders and serves the files here. Enough requests at once to keep every replica busy."""
    from musicgen_app.deploy import ray_serve
    from musicgen_app.web import lifecycle

    service = ray_serve.start(args.replicas, address=args.ray_address or None, debug=args.debug_model)
    lifecycle.on_stop(lambda: ray_serve.stop(graceful=False))  # the stop ends with os._exit, past atexit
    args.concurrency = max(args.concurrency, args.replicas * ray_serve.MAX_ONGOING)
    logging.getLogger("musicgen_app").info("models on %d Ray Serve replicas; %d requests at once",
                                           args.replicas, args.concurrency)
    return service


if __name__ == "__main__":
    main()
