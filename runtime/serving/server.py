"""Start, watch and stop a ``tritonserver`` process on loopback.

The binary comes from nvidia-pytriton (``pip install 'mmfir[serve]'``: Triton core 2.51 with only the
python backend) or from ``--tritonserver PATH`` (e.g. NVIDIA's container, /opt/tritonserver/bin).
Measured here (Python 3.11): pytriton's python-backend stub links the system libpython unless
LD_LIBRARY_PATH names the interpreter's LIBDIR (else ``'_thread.RLock' object has no attribute
'_recursion_count'``), and that stub hands python models zero-filled tensors when the environment's
numpy is 2.x (nvidia-pytriton itself requires numpy<2). The stub embeds the interpreter of the
environment first on PATH, so ``python_env`` picks the environment the python models run in.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import BackendUnavailable, ServerError

LOOPBACK = "127.0.0.1"
PYTHON_ENV_VAR = "MMFIR_TRITON_PYTHON_ENV"
PROBE = ("import json, sys, sysconfig\n"
         "out = {'version': '%d.%d' % sys.version_info[:2], 'libdir': sysconfig.get_config_var('LIBDIR')}\n"
         "try:\n    import numpy; out['numpy'] = numpy.__version__\nexcept ImportError: out['numpy'] = None\n"
         "try:\n    import mmfir.runtime; out['mmfir'] = True\nexcept ImportError: out['mmfir'] = False\n"
         "sys.stdout.write(json.dumps(out))\n")


@dataclass(frozen=True)
class TritonInstall:
    binary: Path
    backends: Path            # folder holding python/libtriton_python.so (Triton's --backend-directory)
    stubs: Path | None = None  # pytriton: per-Python-version stubs (python_backend_stubs/3.11/...)
    libs: Path | None = None   # pytriton: shared libraries its binaries were linked with


def find_triton(binary: str | Path | None = None, backends: str | Path | None = None) -> TritonInstall:
    """The given tritonserver (backends beside it, as in NVIDIA's container) or nvidia-pytriton's."""
    if binary:
        binary = Path(binary)
        if not binary.is_file():
            raise BackendUnavailable(f"tritonserver not found at {binary}")
        return TritonInstall(binary, Path(backends) if backends else binary.parent.parent / "backends")
    spec = importlib.util.find_spec("pytriton")
    root = Path(spec.origin).parent / "tritonserver" if spec and spec.origin else None
    if root is None or not (root / "bin" / "tritonserver").is_file():
        raise BackendUnavailable("no tritonserver binary: pip install 'mmfir[serve]' (nvidia-pytriton ships one) "
                                 "or pass --tritonserver PATH")
    libs = root.parent.parent / "nvidia_pytriton.libs"
    return TritonInstall(root / "bin" / "tritonserver", Path(backends) if backends else root / "backends",
                         root / "python_backend_stubs", libs if libs.is_dir() else None)


@dataclass(frozen=True)
class PythonEnv:
    prefix: Path
    version: str
    libdir: str
    numpy: str | None
    has_mmfir: bool

    @classmethod
    def probe(cls, prefix: str | Path | None = None) -> "PythonEnv":
        prefix = Path(prefix or os.environ.get(PYTHON_ENV_VAR) or sys.prefix)
        python = prefix / "bin" / "python"
        if not python.exists():
            raise ServerError(f"no Python environment at {prefix} (expected {python})")
        done = subprocess.run([str(python), "-c", PROBE], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise ServerError(f"cannot run {python}: {done.stderr.strip().splitlines()[-1:]}")
        d = json.loads(done.stdout)
        return cls(prefix, d["version"], d["libdir"] or "", d["numpy"], d["mmfir"])

    def problem(self) -> str | None:
        """Why Triton's python models cannot run in this environment, or None."""
        if not self.has_mmfir:
            return f"mmfir is not installed in {self.prefix}"
        if self.numpy is None:
            return f"numpy is not installed in {self.prefix}"
        if int(self.numpy.split(".")[0]) >= 2:
            return (f"{self.prefix} has numpy {self.numpy}; Triton 2.51's python backend passes zero-filled tensors "
                    f"with numpy 2 (nvidia-pytriton requires numpy<2): use an environment with numpy<2 "
                    f"(--python-env or {PYTHON_ENV_VAR})")
        return None


def prepare_backends(install: TritonInstall, env: PythonEnv, workdir: Path) -> Path:
    """A --backend-directory whose python backend has the stub built for the environment's Python."""
    if install.stubs is None:
        return install.backends
    stub = install.stubs / env.version / "triton_python_backend_stub"
    if not stub.is_file():
        have = ", ".join(sorted(p.name for p in install.stubs.iterdir()))
        raise ServerError(f"nvidia-pytriton has no python backend stub for Python {env.version} (it has: {have})")
    target = workdir / "backends" / "python"
    target.mkdir(parents=True, exist_ok=True)
    for f in (install.backends / "python").iterdir():
        if f.is_file():
            shutil.copy2(f, target / f.name)
    shutil.copy2(stub, target / stub.name)
    return target.parent


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent() -> None:
    """In the child, before exec: the kernel sends it SIGTERM when its parent dies, however the parent
    died (SIGKILL included), so a server never outlives its supervisor and keeps the ports. Linux only;
    elsewhere the supervisor's own clean stop path is all there is."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


class TritonServer:
    """One tritonserver process in its own process group; a context manager that always stops it.

    The process runs in its own session (a Ctrl-C in the terminal reaches the supervisor, which stops it
    cleanly, draining requests) and dies with its supervisor (``die_with_parent``)."""

    def __init__(self, repo: str | Path, http_port: int | None = None, grpc_port: int | None = None,
                 metrics_port: int | None = None, host: str = LOOPBACK, python_env: str | Path | None = None,
                 binary: str | Path | None = None, backends: str | Path | None = None, log_verbose: int = 0):
        self.repo = Path(repo).resolve()
        if not (self.repo / "mmfir" / "config.pbtxt").is_file():
            raise ServerError(f"{self.repo} is not a model repository written by `mmfir serve-repo` (no mmfir/)")
        self.host, self.log_verbose = host, log_verbose
        self.ports = {"http": http_port or free_port(), "grpc": grpc_port or free_port(),
                      "metrics": metrics_port or free_port()}
        self.install = find_triton(binary, backends)
        self.env = PythonEnv.probe(python_env)
        if problem := self.env.problem():
            raise ServerError(problem)
        self.workdir = Path(tempfile.mkdtemp(prefix="mmfir-triton-"))
        self.log_path = self.workdir / "tritonserver.log"
        self.process: subprocess.Popen | None = None

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.ports['http']}"

    @property
    def grpc_url(self) -> str:
        return f"grpc://{self.host}:{self.ports['grpc']}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def command(self) -> list[str]:
        backends = prepare_backends(self.install, self.env, self.workdir)
        cmd = [str(self.install.binary), f"--model-repository={self.repo}", f"--backend-directory={backends}",
               "--model-control-mode=none", "--exit-on-error=true", "--strict-readiness=true",
               f"--log-verbose={self.log_verbose}", "--allow-gpu-metrics=false"]
        for proto in ("http", "grpc", "metrics"):
            cmd += [f"--{proto}-address={self.host}", f"--{proto}-port={self.ports[proto]}"]
        return cmd

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        libs = [self.env.libdir] + ([str(self.install.libs)] if self.install.libs else [])
        env["LD_LIBRARY_PATH"] = os.pathsep.join(libs + [p for p in [env.get("LD_LIBRARY_PATH")] if p])
        env["PATH"] = os.pathsep.join([str(self.env.prefix / "bin"), env.get("PATH", "")])
        env["TMPDIR"] = str(self.workdir / "tmp")
        (self.workdir / "tmp").mkdir(exist_ok=True)
        return env

    def start(self, timeout: float = 60.0) -> "TritonServer":
        cmd = self.command()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            env=self.environment(), start_new_session=True,
                                            preexec_fn=die_with_parent if sys.platform == "linux" else None)
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(f"tritonserver exited with code {self.process.returncode} while loading: "
                                  f"{self.log_problem()}")
            if self.ready():
                return
            time.sleep(0.2)
        raise ServerError(f"tritonserver was not ready after {timeout:g}s: {self.log_problem()}")

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.http_url}/v2/health/ready", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def log_problem(self) -> str:
        """The most telling line of the log: the last error, traceback line or failed model (one line)."""
        text = self.log_tail(200).splitlines()
        hits = [ln for ln in text if ln.startswith("E") or "Error" in ln or "UNAVAILABLE" in ln]
        line = " ".join(hits[-1].replace("|", " ").split()) if hits else "no error in the log"
        return f"{line} (log: {self.log_path})"

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM the process group (Triton drains in-flight requests), SIGKILL it after ``timeout``."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.process.wait(10)
        self._signal_group(signal.SIGKILL)  # stray python stubs of the group, if any
        return self.process.returncode

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def cleanup(self, keep_log: bool = False) -> None:
        """Remove the work folder (backends, temporary files); ``keep_log`` leaves the log for a post-mortem."""
        if not keep_log:
            shutil.rmtree(self.workdir, ignore_errors=True)
            return
        for sub in ("backends", "tmp"):
            shutil.rmtree(self.workdir / sub, ignore_errors=True)

    def __enter__(self) -> "TritonServer":
        return self.start() if self.process is None else self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.stop()
        self.cleanup(keep_log=exc_type is not None and not issubclass(exc_type, KeyboardInterrupt))
