"""The package layout: one subpackage per stage, imports flowing one way (issue 9).

Every import statement of the package (module level or inside a function) is read from the
source; a module may import only its own stage and the stages below it. `errors` and
`audio_io` are leaves every stage may use; `api` and `cli` sit on top (`__main__`, for
`python -m faustdiff`, over `cli`), with the framework
bindings (`torch`: the PyTorch layer, `jax`: the JAX function) beside `api`."""
import ast
from pathlib import Path

import faustdiff

PKG = Path(faustdiff.__file__).resolve().parent
# Lowest first. A module of stage k may import modules of stages 0..k.
STAGES = ["errors", "core", "frontend", "signals", "ad", "backend", "audio_io", "learn",
          "api", "torch", "jax", "cli", "__main__", "__init__"]


def _stage(module: str) -> str:
    """faustdiff.frontend.parse -> frontend; faustdiff.api -> api; faustdiff -> __init__."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path, module: str):
    is_pkg = path.name == "__init__.py"
    tree = ast.parse(path.read_text("utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = module.split(".")
            base = base[: len(base) - node.level + (1 if is_pkg else 0)]
            target = ".".join(base + ([node.module] if node.module else []))
            if node.module is None:   # from . import x: x is a module of that package
                for a in node.names:
                    yield node.lineno, f"{target}.{a.name}" if a.name != "__version__" else target
            else:
                yield node.lineno, target
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            for n in names:
                if n == "faustdiff" or n.startswith("faustdiff."):
                    yield node.lineno, n


DATA = {"grammar"}   # installed data packages (grammar/faust.lark): no code of ours


def _modules():
    for path in sorted(PKG.rglob("*.py")):
        if path.relative_to(PKG).parts[0] in DATA:
            continue
        rel = path.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield path, ".".join(parts)


def test_imports_flow_one_way():
    wrong = []
    for path, module in _modules():
        here = STAGES.index(_stage(module))
        for line, target in _imports(path, module):
            if target == "faustdiff":   # the package root: only __version__ is read from it
                continue
            there = STAGES.index(_stage(target))
            if there > here:
                wrong.append(f"{path.relative_to(PKG.parent)}:{line}: {module} imports {target}")
    assert wrong == []


def test_stage_folders():
    subs = sorted(p.name for p in PKG.iterdir()
                  if (p / "__init__.py").is_file() and p.name not in DATA)
    assert subs == ["ad", "backend", "core", "frontend", "learn", "signals"]
    top = sorted(p.stem for p in PKG.glob("*.py") if p.name != "__init__.py")
    assert top == ["__main__", "api", "audio_io", "cli", "errors", "jax", "torch"]
    for sub in subs:   # each says what it holds and what it may import
        doc = ast.get_docstring(ast.parse((PKG / sub / "__init__.py").read_text("utf-8")))
        assert doc and "import" in doc.lower(), sub


def test_old_module_paths_still_import():
    from faustdiff.train import Trainer
    import faustdiff.losses
    import faustdiff.optim
    import faustdiff.grad
    assert Trainer is faustdiff.learn.train.Trainer is faustdiff.Trainer
    assert faustdiff.losses is faustdiff.learn.losses
    assert faustdiff.optim.Adam is faustdiff.learn.optim.Adam
    assert faustdiff.grad.GradProgram is faustdiff.backend.grad.GradProgram
