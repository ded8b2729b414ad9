import subprocess
import sys


def test_runtime_does_not_import_torch():
    code = "import sys, mmfir.runtime, mmfir.cli.main; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_help_runs():
    out = subprocess.run([sys.executable, "-m", "mmfir.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "mmfir" in out.stdout
