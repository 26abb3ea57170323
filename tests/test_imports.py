"""No import circles: every kvdash module imports on its own, and none imports (at module level or inside a
function) a module that imports it back. Imports for type checking only (`if TYPE_CHECKING:`) do not count."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "kvdash"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(path: Path) -> set[str]:
    """The kvdash modules a file imports, anywhere in it, except under `if TYPE_CHECKING:`."""
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "kvdash")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "kvdash":
            for a in node.names:  # `from kvdash import serving_runs` names a module; `from kvdash.x import f` not
                sub = f"{node.module}.{a.name}"
                out.add(sub if sub in MODULES else node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return out


def test_the_import_graph_has_no_cycles():
    graph = {name: imports_of(path) & MODULES.keys() for name, path in MODULES.items()}
    cycles, state = [], {}

    def walk(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":  # nxt is on the current path: node imports a module that imports it
                path = [*stack, node]
                cycles.append(" -> ".join([*path[path.index(nxt):], nxt]))
            elif nxt not in state:
                walk(nxt, [*stack, node])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            walk(name, [])
    assert cycles == []
    # the rules this test enforces are not vacuous: the graph is read
    assert "kvdash.params" in graph["kvdash.model"] and "kvdash.model" not in graph["kvdash.params"]
    assert "kvdash.hf_readers" in graph["kvdash.hf_families"] and "kvdash.hf_config" not in graph["kvdash.hf_families"]


def test_every_module_imports_on_its_own():
    script = (
        "import importlib, sys\n"
        f"names = {sorted(n for n in MODULES if n != 'kvdash.__main__')!r}\n"
        "failed = []\n"
        "for name in names:\n"
        "    for loaded in [m for m in sys.modules if m == 'kvdash' or m.startswith('kvdash.')]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as e:\n"
        "        failed.append(f'{name}: {type(e).__name__}: {e}')\n"
        "print('\\n'.join(failed))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
