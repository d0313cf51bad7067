"""The package's modules import one another one way: no circle, counting imports made inside
functions (a deferred import hides a circle from Python, not from a reader)."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / 'mmtrackgen'


def module_files() -> dict:
    """Dotted module name -> file, for every module of the package (packages end in '')."""
    modules = {}
    for file in PACKAGE.rglob('*.py'):
        parts = list(file.relative_to(PACKAGE.parent).with_suffix('').parts)
        if parts[-1] == '__init__':
            parts = parts[:-1]
        modules['.'.join(parts)] = file
    return modules


def imported_modules(name: str, file: Path, modules: dict) -> set:
    """The package modules ``name`` imports anywhere in its file."""
    found = set()
    package = name.split('.') if file.name == '__init__.py' else name.split('.')[:-1]
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                base = '.'.join(package[:len(package) - node.level + 1] + ([base] if base else []))
            targets = [base] + [f'{base}.{alias.name}' for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in modules and t != name)
    return found


def circles(graph: dict) -> list:
    """Strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while not group or group[-1] != v:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            if len(group) > 1:
                groups.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return groups


def test_no_import_circle_between_modules():
    modules = module_files()
    # Package __init__ files only re-export what their modules define; edges into them would
    # make every sibling import look circular, so only module files are nodes.
    files = {n: f for n, f in modules.items() if f.name != '__init__.py'}
    graph = {n: imported_modules(n, f, modules) & set(files) for n, f in files.items()}
    assert circles(graph) == []


def test_the_check_finds_a_circle():
    assert circles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [['a', 'b', 'c']]
