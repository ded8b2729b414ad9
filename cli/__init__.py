"""mmfir.cli: the `mmfir` command line, the one place that wires runtime, measurement, export and models.

Each subcommand lives in ``mmfir.cli.commands.<name>`` and defines ``add_parser(subparsers)`` and
``run(args) -> int``; heavy imports (torch through ``mmfir.export``, OpenVINO, tritonclient) happen
inside ``run``.
"""
