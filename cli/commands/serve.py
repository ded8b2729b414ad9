"""`mmfir serve REPO`: run Triton Inference Server on a model repository until Ctrl-C."""
from __future__ import annotations

import sys
import time


def add_parser(sub):
    p = sub.add_parser("serve", help="start Triton Inference Server on a repository from `mmfir serve-repo`",
                       description="Serves on 127.0.0.1 unless --host says otherwise; Ctrl-C stops the server.")
    p.add_argument("repo", metavar="REPO", help="model repository folder")
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--grpc-port", type=int, default=8001)
    p.add_argument("--metrics-port", type=int, default=8002)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, loopback only)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for readiness (default 120)")
    p.add_argument("--python-env", help="Python environment (prefix) the python models run in "
                                        "(default: $MMFIR_TRITON_PYTHON_ENV or this interpreter's); needs numpy<2")
    p.add_argument("--tritonserver", help="tritonserver binary (default: the one in nvidia-pytriton)")
    p.add_argument("--backend-directory", help="Triton backends folder (default: beside the binary)")
    p.add_argument("--log-verbose", type=int, default=0, help="Triton's --log-verbose level")
    p.set_defaults(func=run)


def run(args) -> int:
    from mmfir.runtime.serving.server import TritonServer

    server = TritonServer(args.repo, args.http_port, args.grpc_port, args.metrics_port, host=args.host,
                          python_env=args.python_env, binary=args.tritonserver, backends=args.backend_directory,
                          log_verbose=args.log_verbose)
    failed = True  # Ctrl-C and SIGTERM arrive as KeyboardInterrupt (cli.main.handle_stop_signals)
    try:
        print(f"mmfir serve: starting tritonserver (log: {server.log_path})", file=sys.stderr, flush=True)
        started = time.monotonic()
        server.start(timeout=args.timeout)
        print(f"mmfir serve: ready in {time.monotonic() - started:.1f}s (tritonserver pid {server.pid}): "
              f"{server.http_url} (HTTP), {server.grpc_url} (gRPC), "
              f"http://{args.host}:{server.ports['metrics']}/metrics; Ctrl-C stops", file=sys.stderr, flush=True)
        return watch(server)
    except KeyboardInterrupt:
        print("mmfir serve: stopping", file=sys.stderr, flush=True)
        code = server.stop()
        print(f"mmfir serve: stopped (tritonserver exit code {code})", file=sys.stderr)
        failed = False
        return 0
    finally:
        server.stop()
        server.cleanup(keep_log=failed)


def watch(server) -> int:
    """Block until the server exits on its own (an error) or Ctrl-C/SIGTERM arrives."""
    from mmfir.runtime.errors import ServerError

    while server.process.poll() is None:
        time.sleep(0.5)
    raise ServerError(f"tritonserver exited with code {server.process.returncode}: {server.log_problem()}")
