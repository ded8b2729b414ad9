"""The `mmfir` command line. Each subcommand lives in ``mmfir.runtime.commands.<name>`` and
defines ``add_parser(subparsers)`` and ``run(args) -> int``; heavy imports happen inside ``run``.
Errors of type MmfirError become one line on stderr and a non-zero exit, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .errors import MmfirError

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


def setup_logging(command: str) -> None:
    """Library code logs to the `mmfir` logger; the CLI shows warnings and errors on stderr."""
    logger = logging.getLogger("mmfir")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_CommandFormatter(command))
    logger.handlers[:] = [handler]
    logger.setLevel(logging.WARNING)
    logger.propagate = False


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    setup_logging(args.command)
    try:
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


if __name__ == "__main__":
    sys.exit(main())
