"""The package's structure, read from its source: no import circles, the library never reaches
into the trainer, and no module imports another's private names or uses another object's private
members.

Every import counts, including those inside functions (a lazy import is still a dependency).
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

PACKAGE = Path(__file__).resolve().parents[2] / "python" / "dqnfast"
# The library a user imports without the trainer: none of these may import the trainer's config
# (dqnfast.config) or anything under dqnfast.train.
LIBRARY = ("batch", "fast_update", "learner", "learner_options", "preprocessing", "prioritized", "replay",
           "replay_reference", "preprocess_reference", "sb3", "signals", "torch_replay", "vector_env", "wrappers")
TRAINER = ("config", "train")
PRIVATE_MODULES_SHARED_BY_DESIGN = ("_core", "_validate", "_version")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules() -> Dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(name: str, path: Path) -> Iterator[Tuple[str, List[str], int]]:
    """(imported module, names taken from it, line) for every dqnfast import in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "dqnfast":
                    yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "dqnfast":
                continue
            names = [a.name for a in node.names]
            if not node.module:  # from . import x: x is a module
                for n in names:
                    yield f"{target}.{n}", [], node.lineno
            else:
                yield target, names, node.lineno


def graph() -> Dict[str, Set[str]]:
    modules = package_modules()
    edges: Dict[str, Set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for target, names, _ in imports_of(name, path):
            for candidate in [f"{target}.{n}" for n in names] + [target]:
                if candidate in modules and candidate != name:
                    edges[name].add(candidate)
                    break
    return edges


def cycles(edges: Dict[str, Set[str]]) -> List[List[str]]:
    """Every strongly connected component of more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_package_has_no_import_circles():
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_library_never_imports_the_trainer():
    modules = package_modules()
    bad = []
    for short in LIBRARY:
        name = f"dqnfast.{short}"
        for target, _, line in imports_of(name, modules[name]):
            if any(target == f"dqnfast.{t}" or target.startswith(f"dqnfast.{t}.") for t in TRAINER):
                bad.append(f"{name}:{line} imports {target}")
    assert not bad, bad


def test_no_module_imports_another_modules_private_names():
    bad = []
    for name, path in package_modules().items():
        for target, names, line in imports_of(name, path):
            if target.rpartition(".")[2] in PRIVATE_MODULES_SHARED_BY_DESIGN:
                continue
            bad += [f"{name}:{line} imports {n} from {target}" for n in names if n.startswith("_") and n != "__version__"]
    assert not bad, bad


# Underscored names that are public API of what they belong to: NamedTuple's methods (Batch is one).
NAMEDTUPLE_API = {"_asdict", "_replace", "_fields", "_make", "_field_defaults"}
# Each a private member used from inside the class that defines it, through another name: kept here
# by hand, with the reason, so that the list stays short.
OWN_CLASS_USES = {
    ("dqnfast.replay", "rb._load_from"),  # ReplayBuffer.load fills the buffer it has just made
}


def private_member_uses(name: str, path: Path) -> Iterator[Tuple[str, int]]:
    """(expression, line) for each ``x._member`` in the file where x is not self, cls, super() or a
    class of the same file."""
    tree = ast.parse(path.read_text(), str(path))
    own_classes = {node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_") or node.attr.startswith("__"):
            continue
        if node.attr in NAMEDTUPLE_API:
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and (owner.id in ("self", "cls") or owner.id in own_classes):
            continue
        if isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "super":
            continue
        expression = ast.unparse(node)
        if (name, expression) not in OWN_CLASS_USES:
            yield expression, node.lineno


def test_no_module_reaches_into_another_objects_private_members():
    """Private members of other modules' objects (the native buffer's methods, ale_py's AtariEnv,
    another module's class) are not used: each module goes through a stated interface."""
    bad = [f"{name}:{line} uses {expr}" for name, path in package_modules().items()
           for expr, line in private_member_uses(name, path)]
    assert not bad, bad
