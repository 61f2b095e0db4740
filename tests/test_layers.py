"""The layers import only downward (nets <- envs <- agents <- pixelrl <- scripts), no command line imports
another, nothing patches sys.path, and the modules of the project form no import cycle."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["nets", "envs", "agents", "pixelrl", "scripts"]  # each may import only those before it


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def modules() -> dict[str, Path]:
    found = {}
    for layer in LAYERS:
        for path in sorted((ROOT / layer).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            found[name] = path
    return found


def test_every_layer_imports_only_the_layers_below_it():
    for name, path in modules().items():
        layer = LAYERS.index(name.split(".")[0])
        upward = {i for i in imports(path) if i.split(".")[0] in LAYERS[layer + 1 :]}
        assert not upward, f"{name} imports {sorted(upward)} from a layer above it"
        assert "sys.path" not in path.read_text(), f"{name} patches sys.path"


def test_no_command_line_imports_another_and_scripts_is_not_a_package():
    assert not (ROOT / "scripts" / "__init__.py").exists()
    for path in (ROOT / "scripts").glob("*.py"):
        assert not any(i.split(".")[0] == "scripts" for i in imports(path)), f"{path.name} imports a script"


def test_the_project_modules_form_no_import_cycle():
    mods = modules()
    graph = {name: {i for i in imports(path) if i in mods and i != name} for name, path in mods.items()}
    for name in LAYERS:  # a package's __init__ importing its own submodules is how it exports them
        graph[name] = {d for d in graph.get(name, ()) if not d.startswith(name + ".")}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for dep in graph[node]:
            assert state.get(dep) != 1, f"import cycle: {' -> '.join([*trail, node, dep])}"
            if dep not in state:
                visit(dep, [*trail, node])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [])
