"""What setup.py's ``python_requires`` promises holds for the code (issue 20, item 9): no syntax
or annotation evaluated at run time that the oldest allowed Python lacks, and the suite itself
runs on an allowed Python (the versions it is run on: 3.11 here, 3.12 on the GPU machines)."""
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ('mmtrackgen', 'tools', 'projects', 'tests')


def minimum_python() -> tuple[int, int]:
    """(major, minor) of setup.py's ``python_requires='>=X.Y'``."""
    tree = ast.parse((ROOT / 'setup.py').read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == 'python_requires':
            match = re.fullmatch(r'>=\s*(\d+)\.(\d+)', node.value.value)
            assert match, f'python_requires {node.value.value!r} is not of the form >=X.Y'
            return int(match[1]), int(match[2])
    raise AssertionError('setup.py sets no python_requires')


def runtime_unions(tree: ast.Module) -> list[int]:
    """Lines of ``X | Y`` annotations that Python evaluates when the code runs (function
    signatures, module- and class-level annotations): a TypeError before Python 3.10."""
    if any(isinstance(node, ast.ImportFrom) and node.module == '__future__' and any(
            alias.name == 'annotations' for alias in node.names) for node in tree.body):
        return []  # annotations stay strings
    annotations = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            for arg in args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]:
                if arg is not None and arg.annotation is not None:
                    annotations.append(arg.annotation)
            if node.returns is not None:
                annotations.append(node.returns)
    for scope in [tree] + [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]:
        annotations += [n.annotation for n in scope.body if isinstance(n, ast.AnnAssign)]
    return sorted({
        node.lineno
        for annotation in annotations for node in ast.walk(annotation)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr)
    })


def test_code_runs_on_the_oldest_python_that_setup_allows():
    minimum = minimum_python()
    unions, unparsable = [], []
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob('*.py')):
            source = path.read_text(encoding='utf-8')
            name = path.relative_to(ROOT).as_posix()
            try:  # syntax newer than the minimum (match statements, except*, ...)
                tree = ast.parse(source, filename=name, feature_version=minimum)
            except SyntaxError as e:
                unparsable.append(f'{name}:{e.lineno}')
                continue
            if minimum < (3, 10):
                unions += [f'{name}:{line}' for line in runtime_unions(tree)]
    assert not unparsable, f'syntax newer than Python {minimum}: {unparsable[:5]}'
    assert not unions, (f"`X | Y` annotations fail before Python 3.10, but setup.py allows "
                        f'{minimum}: {unions[:5]} ({len(unions)} in all)')


def test_the_suite_runs_on_an_allowed_python():
    assert sys.version_info[:2] >= minimum_python()


def test_runtime_unions_are_found_and_postponed_annotations_are_not():
    code = 'def f(a: int | None = None) -> str | None: ...\nx: int | str = 1\n'
    assert runtime_unions(ast.parse(code)) == [1, 2]
    assert runtime_unions(ast.parse('from __future__ import annotations\n' + code)) == []
