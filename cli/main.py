"""The `mmfir` command line. Each subcommand lives in ``mmfir.cli.commands.<name>`` and defines
``add_parser(subparsers)`` and ``run(args) -> int``; heavy imports happen inside ``run``.
Every error of type MmfirError, from any command, becomes one line on stderr and a non-zero exit,
never a traceback (``-v`` shows it).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import signal
import sys
import threading

from mmfir.runtime import cpu
from mmfir.runtime.errors import MmfirError

COMMANDS = ("demo", "restore", "export", "build", "compare", "bench", "evaluate",
            "import", "serve-repo", "serve", "info")


def _load(name: str):
    # `import` is a Python keyword, so its module is commands/import_.py
    stem = "import_" if name == "import" else name.replace("-", "_")
    module = f"{__package__}.commands.{stem}"
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name == module:  # command not written yet
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmfir", description="Deploy all-in-one image restoration models.")
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        mod = _load(name)
        if mod is not None:
            mod.add_parser(sub)
    return parser


class _CommandFormatter(logging.Formatter):
    """Library warnings as `mmfir CMD: warning: message`, the CLI's one-line style."""

    def __init__(self, command: str):
        super().__init__()
        self.command = command

    def format(self, record: logging.LogRecord) -> str:
        return f"mmfir {self.command}: {record.levelname.lower()}: {record.getMessage()}"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (not when the handler was made)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


@contextlib.contextmanager
def command_logging(command: str):
    """Library code logs to the `mmfir` logger; during a command its warnings and errors go to stderr as
    one line each. The logger's previous state is restored afterwards (in-process callers, tests)."""
    logger = logging.getLogger("mmfir")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    handler = _StderrHandler()
    handler.setFormatter(_CommandFormatter(command))
    logger.handlers[:] = [handler]
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    try:
        yield
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


def _interrupt(signum, frame):
    raise KeyboardInterrupt


@contextlib.contextmanager
def stop_signals_interrupt():
    """SIGTERM (systemd, docker stop, CI) and SIGINT (Ctrl-C, even when a background job inherited it
    ignored) both raise KeyboardInterrupt during a command: every writer removes its temporary file on
    the way out and the command exits 130 after saying what was done. Previous handlers are restored."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals can only be handled in the main thread
        return
    saved = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        cpu.apply_isa_cap()  # before any command imports torch or OpenVINO
        with stop_signals_interrupt(), command_logging(args.command):
            return int(args.func(args) or 0)
    except MmfirError as err:
        if args.verbose:
            raise
        print(f"mmfir {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"mmfir {args.command}: interrupted", file=sys.stderr)
        return 130
    except ImportError as err:
        if args.verbose:
            raise
        print(f"mmfir {args.command}: error: missing package {err.name or err}: "
              "install the extra it belongs to, e.g. pip install 'mmfir[export]'", file=sys.stderr)
        return 2
    except OSError as err:  # a file the command was told to read or write (full disk, permissions, ...)
        if args.verbose:
            raise
        where = f" ({err.filename})" if err.filename else ""
        print(f"mmfir {args.command}: error: {err.strerror or err}{where}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
