"""The command layer sits on top: viz draws what it is given (DESIGN.md section 9)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import pointsam

PKG = Path(pointsam.__file__).resolve().parent


def _imported(path: Path, root: Path = PKG.parent) -> set[str]:
    """Absolute names of everything ``path`` imports, anywhere in the file."""
    pkg = list(path.relative_to(root).with_suffix("").parts)[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = pkg[: len(pkg) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            out |= {mod} | {f"{mod}.{a.name}" for a in node.names}
    return out


def _above(names: set[str], layers=("pointsam.engine", "pointsam.cli")) -> set[str]:
    return {n for n in names if any(n == lay or n.startswith(lay + ".")
                                    for lay in layers)}


def test_the_checker_sees_relative_and_nested_imports(tmp_path):
    probe = tmp_path / "pointsam" / "viz" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text("from . import maps\n"
                     "def run():\n"
                     "    from ..engine import predict\n"
                     "    import pointsam.cli.viz\n")
    names = _imported(probe, tmp_path)
    assert "pointsam.viz.maps" in names
    assert _above(names) == {"pointsam.engine", "pointsam.engine.predict",
                             "pointsam.cli.viz"}
    assert _above({"pointsam.engineering", "pointsam.viz"}) == set()


@pytest.mark.parametrize("path", sorted((PKG / "viz").rglob("*.py")),
                         ids=lambda p: p.name)
def test_viz_never_imports_the_engine_or_the_cli(path):
    assert not _above(_imported(path)), f"{path.name} imports {_above(_imported(path))}"


def test_every_command_has_a_module():
    from pointsam.cli import COMMANDS, build_parser

    assert list(COMMANDS) == ["train", "eval", "predict", "viz", "demo", "bench",
                             "sweep", "models", "export"]
    for name, module in COMMANDS.items():
        assert module.__name__ == f"pointsam.cli.{name}"
        assert callable(module.add_parser) and callable(module.run)
    help_text = build_parser().format_help()
    assert all(name in help_text for name in COMMANDS)


def test_help_does_not_import_the_engine():
    # the commands import the engine when they run: `pointsam --help` stays quick
    code = ("import sys; from pointsam.cli import build_parser; build_parser(); "
            "print(sorted(m for m in sys.modules if m.startswith('pointsam.engine')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120, cwd=PKG.parent)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
