"""The builders: dataset table, transforms, model with its arguments; no import cycle."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from pointsam import data as D
from pointsam.engine import builders
from pointsam.engine.builders import (
    DATASETS,
    DEFAULT_TASK,
    BuiltModel,
    build_dataset,
    build_datasets,
    build_model,
    build_task,
)
from pointsam.engine.config import ConfigError, config_from_dict
from pointsam.engine.tasks import PartSegTask

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tiny import one_thread  # noqa: E402,F401  (autouse: one torch thread)

PKG = Path(builders.__file__).resolve().parents[1]  # .../pointsam


def test_dataset_table_holds_the_classes():
    assert set(DATASETS) == set(DEFAULT_TASK)
    for name, (cls, fixed) in DATASETS.items():
        assert isinstance(cls, type) and getattr(D, cls.__name__) is cls, name
        assert isinstance(fixed, dict)
    assert DATASETS["modelnet40"] == (D.ModelNet, {"name": "40"})


def test_build_dataset_passes_split_and_args():
    cfg = config_from_dict({"data": {"name": "synthetic_shapes",
                                     "args": {"num_samples": 6, "num_points": 32}}})
    ds = build_dataset(cfg, "test")
    assert isinstance(ds, D.SyntheticShapes) and len(ds) == 6
    assert ds[0].pos.shape == (32, 3)


def test_unknown_data_arg_names_the_class_and_its_arguments():
    cfg = config_from_dict({"data": {"name": "synthetic_shapes",
                                     "args": {"bogus": 1}}})
    with pytest.raises(ConfigError, match="data.args for SyntheticShapes: .*bogus"
                       ".*num_samples"):
        build_dataset(cfg, "train")


def test_build_datasets_carves_val_out_of_train():
    cfg = config_from_dict({"data": {"name": "synthetic_shapes", "num_points": 16,
                                     "val_fraction": 0.25,
                                     "args": {"num_samples": 8, "num_points": 32}}})
    ds = build_datasets(cfg)
    tr, va = D.split_train_val(8, 0.25, cfg.data.split_seed)
    assert ds["train"].indices == tr and ds["val"].indices == va
    assert ds["train"].base is ds["val"].base and len(ds["test"]) == 8
    assert ds["val"][0].pos.shape == (16, 3)  # the evaluation transform ran


def test_build_model_returns_the_model_and_its_arguments():
    pytest.importorskip("pointsam.models")
    cfg = config_from_dict({"data": {"name": "synthetic_parts",
                                     "args": {"num_samples": 4, "num_points": 32}},
                            "model": {"name": "pointnet2_lite_partseg",
                                      "args": {"attention": "cbam"}}})
    task = build_task(cfg, build_dataset(cfg, "train"))
    assert isinstance(task, PartSegTask)
    built = build_model(cfg, task)
    assert isinstance(built, BuiltModel)
    model, args = built
    assert args == {"attention": "cbam", "num_classes": task.num_classes,
                    "num_categories": len(task.category_parts)}
    assert not hasattr(model, "_pointsam_args")
    assert cfg.model.args == {"attention": "cbam"}  # the config is left as it was


def _imports(path: Path, pkg: str) -> set[str]:
    """Every ``pointsam`` module ``path`` imports, at the top or inside a function."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out |= {mod} | {f"{mod}.{a.name}" for a in node.names}
    return out


def _import_graph() -> dict[str, set[str]]:
    mods = {}
    for p in PKG.rglob("*.py"):
        parts = list(p.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = p
    graph = {}
    for m, p in mods.items():
        pkg = m if p.name == "__init__.py" else m.rpartition(".")[0]
        # a module importing its own package (or a parent) is not a cycle here:
        # the package's __init__ runs first and imports its modules in order
        graph[m] = {n for n in _imports(p, pkg)
                    if n in mods and n != m and not m.startswith(n + ".")}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        path.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                return path[path.index(w):] + [w]
            if w not in state and (c := visit(w)):
                return c
        path.pop()
        state[v] = 2
        return None

    for v in sorted(graph):
        if v not in state and (c := visit(v)):
            return c
    return None


def test_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_import_graph_has_no_cycle():
    graph = _import_graph()
    assert "pointsam.engine.trainer" in graph
    assert "pointsam.engine.builders" in graph["pointsam.engine.trainer"]
    assert "pointsam.engine.trainer" not in graph["pointsam.engine.builders"]
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


@pytest.mark.parametrize("module", ["pointsam.engine.trainer",
                                    "pointsam.engine.builders",
                                    "pointsam.engine.evaluation"])
def test_engine_module_imports_first_in_a_fresh_interpreter(module):
    r = subprocess.run([sys.executable, "-c", f"import {module}"],
                       capture_output=True, text=True, timeout=120,
                       cwd=PKG.parent)
    assert r.returncode == 0, r.stderr
