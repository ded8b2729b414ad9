"""The runtime stays torch-free: at import and in its source (tests/cli/test_restore.py checks a full ORT
restore too)."""
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "torchvision", "open_clip", "safetensors")
TORCH_PACKAGES = ("models", "export")  # the only packages that may import torch at module level


def test_runtime_does_not_import_torch():
    code = "import sys, mmfir.runtime, mmfir.cli.main; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_help_runs():
    out = subprocess.run([sys.executable, "-m", "mmfir.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "mmfir" in out.stdout


def module_level_imports(path: Path) -> set[str]:
    """Top-level package names imported outside any function or class body."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_no_module_level_torch_import_outside_models_and_export():
    offenders = []
    for folder in ("runtime", "measure", "cli"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            heavy = module_level_imports(path) & set(HEAVY)
            if heavy:
                offenders.append(f"{path.relative_to(ROOT)}: {sorted(heavy)}")
    assert not offenders, offenders
    assert module_level_imports(ROOT / "models" / "system.py") & {"torch"}  # the scan sees real imports


def test_runtime_source_never_names_the_other_packages():
    """Not even inside a function (import-linter checks the same from the import graph)."""
    for path in sorted((ROOT / "runtime").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                bad = [n for n in names if n.split(".")[0] in HEAVY or n.startswith(
                    ("mmfir.models", "mmfir.export", "mmfir.measure", "mmfir.cli"))]
                assert not bad, f"{path.relative_to(ROOT)}:{node.lineno} imports {bad}"
