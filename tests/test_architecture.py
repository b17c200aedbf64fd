"""The layered house of docs/architecture.md, checked from the code's own imports.

Every ``import spinsim.X`` (at the top of a module or inside a function) goes from a
higher layer to a lower one (or within one package, between files without a cycle);
``spinsim/`` keeps at most 8 top-level modules; commands are imported by nobody but the
command line.
"""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "spinsim"

# Lowest first. A room may import rooms of lower layers only; rooms of one layer not each other.
LAYERS = [
    ["errors", "version"],
    ["lattice"],
    ["models"],
    ["samplers", "observables"],
    ["engines"],
    ["analysis", "io"],
    ["run"],
    ["dmc", "training"],
    ["view"],
    ["config"],
    ["bench"],
    ["commands"],
    ["cli"],
    ["__init__", "__main__"],
]
LAYER = {room: k for k, rooms in enumerate(LAYERS) for room in rooms}


def modules() -> dict[str, Path]:
    """``spinsim.a.b`` -> file, for every module of the package (configs excluded)."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if "conf" in parts:
            continue
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name if parts[-1] != "__init__" or len(parts) > 2 else "spinsim.__init__"] = path
    return out


def imports_of(path: Path) -> set[str]:
    """Every spinsim module ``path`` imports, at run time (``if TYPE_CHECKING:`` blocks, for type
    hints only, are left out)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            node.body = []
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("spinsim"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("spinsim"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def resolve(name: str, known: dict[str, Path]) -> str | None:
    """The module an imported name lives in (``spinsim.io.load`` -> ``spinsim.io``)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def test_every_import_runs_down_the_layers():
    known = modules()
    known.setdefault("spinsim", PACKAGE / "__init__.py")
    wrong = []
    for module, path in known.items():
        if module == "spinsim":
            continue
        source = room(module)
        assert source in LAYER, f"{module}: its room {source!r} has no layer; add it to LAYERS"
        for name in imports_of(path):
            target_module = resolve(name, known)
            if target_module is None or target_module == "spinsim":
                target = "__init__"
            else:
                target = room(target_module)
            if target == source:
                continue
            if LAYER[target] >= LAYER[source]:
                wrong.append(f"{module} ({source}) imports {name} ({target})")
    assert not wrong, "imports that run back up (or across) the layers:\n" + "\n".join(sorted(wrong))


def test_no_import_cycles_between_files():
    known = modules()
    graph = {}
    for module, path in known.items():
        targets = {resolve(n, known) for n in imports_of(path)} - {None, module, "spinsim"}
        graph[module] = targets

    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node, stack):
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                cycle.extend(stack[stack.index(nxt) :] + [nxt])
                return True
            if state.get(nxt) is None and visit(nxt, stack + [nxt]):
                return True
        state[node] = 2
        return False

    for node in graph:
        if state.get(node) is None and visit(node, [node]):
            break
    assert not cycle, " -> ".join(cycle)


def test_at_most_eight_top_level_modules():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 8, top


@pytest.mark.parametrize("command", sorted(p.stem for p in (PACKAGE / "commands").glob("[a-z]*.py")))
def test_commands_are_imported_by_the_command_line_only(command):
    for module, path in modules().items():
        if room(module) in ("commands", "cli"):
            continue
        for name in imports_of(path):
            assert not name.startswith(f"spinsim.commands.{command}"), f"{module} imports {name}"


def test_the_layer_table_of_the_docs_is_the_one_checked_here():
    """docs/architecture.md's table of layers names the rooms of LAYERS, in the same order."""
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", text, flags=re.M)
    documented = [re.findall(r"`(\w+)`", rooms) for _, rooms in rows]
    assert documented == LAYERS, documented


def test_the_paths_the_architecture_page_names_exist():
    """Every ``spinsim/...`` path in backticks on docs/architecture.md is a file or folder."""
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"`(spinsim/[\w/.]+?)`", text))
    missing = sorted(p for p in named if not (PACKAGE.parent / p.rstrip("/")).exists())
    assert named and not missing, missing
