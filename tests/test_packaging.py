"""The set-up files agree with each other."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# pip name -> conda name where they differ
CONDA_NAME = {"torch": "pytorch", "torch-geometric": "pyg", "torch-cluster": "pytorch-cluster"}


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower()


def _pyproject():
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_lists_every_dependency():
    import yaml

    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    names = set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            names |= {_name(d) for d in dep["pip"] if not d.startswith("-")}
        else:
            names.add(_name(dep))
    proj = _pyproject()["project"]
    wanted = list(proj["dependencies"]) + proj["optional-dependencies"]["dev"] \
        + proj["optional-dependencies"]["cluster"]
    missing = [r for r in wanted if CONDA_NAME.get(_name(r), _name(r)) not in names]
    assert not missing, f"environment.yml lacks {missing}"


def test_torch_pin_admits_the_cpu_wheel():
    # a range that admits a newer torch would pull a multi-GB CUDA build
    reqs = _pyproject()["project"]["dependencies"]
    torch_req = next(r for r in reqs if _name(r) == "torch")
    assert "<=2.13.0" in torch_req.replace(" ", "")


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "pointsam", "--help"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "demo" in out.stdout


@pytest.mark.parametrize("script", ["run.sh", ".ci/run"])
def test_scripts_are_valid_bash(script):
    assert subprocess.run(["bash", "-n", str(ROOT / script)]).returncode == 0


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash run.sh test" in readme and "bash run.sh test" in ci
