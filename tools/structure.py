"""Measure the shape of the brain2music package: long functions, long files, long parameter lists,
import cycles between sub-packages, re-export-only ("shim") modules, imports against the layering rule
of ``docs/architecture.md`` and public functions without a docstring.

Run from the repository root::

    python tools/structure.py          # a short report
    python tools/structure.py --json   # the same figures, machine-readable

Only the standard library is used (``ast``), so it runs without installing the package.

Definitions
-----------
- A function's length counts its lines from ``def`` (decorators excluded) to its last line.
- A parameter is every positional, keyword-only, ``*args`` and ``**kwargs`` parameter except a leading
  ``self``/``cls``.
- A sub-package is the first path component under ``src/brain2music/``; a top-level module
  (``checkpoints.py``) is its own sub-package. An import cycle is a strongly connected group of two or
  more sub-packages in the graph "A imports something from B". Imports inside functions (lazy imports)
  count as well as those at module level: a cycle through a lazy import is still a cycle.
- A shim is a module whose body (docstring aside) holds only imports plus ``__all__`` or trivial
  assignments of imported names, and that imports from another module of the package.
- The layering rule: :data:`LAYERS` lists the sub-packages lowest first; a sub-package may import from
  the layers below its own, never from its own layer's other members or from a layer above. Every such
  import (lazy ones included) is reported with its line, and so is a sub-package missing from the table.
- A public function is a module-level function, or a method of a module-level class, whose name, class
  name and module path have no leading underscore (``__init__.py`` aside); dunder methods and property
  setters/deleters are not counted. It is undocumented when its body does not start with a docstring.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

PACKAGE = "brain2music"
MAX_FUNCTION_LINES = 80
MAX_FILE_LINES = 600
MAX_PARAMETERS = 12

#: Sub-packages by layer, lowest first (``docs/architecture.md``). A sub-package imports only from lower
#: layers. The package's own ``__init__`` sits above everything (the public API re-exports all stages).
LAYERS: list[tuple[str, ...]] = [
    ("errors",),
    ("_registry", "_checks", "_io", "_paths", "windows"),
    ("data",),
    ("stimuli",),
    ("simulate", "embeddings", "models"),
    ("evaluate",),
    ("results",),
    ("reconstruct", "config"),
    ("checkpoints",),
    ("study", "report", "live"),
    ("pipeline",),
    ("commands",),
    ("cli",),
]


def _module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _subpackage(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    """Absolute module names an ``from ... import ...`` statement refers to."""
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        prefix = ".".join(base)
        target = f"{prefix}.{node.module}" if node.module else prefix
    else:
        target = node.module or ""
    names = [target]
    if not node.module or node.level or target == PACKAGE:
        # `from . import x` and `from brain2music import commands` may import the sub-module x
        names += [f"{target}.{alias.name}" for alias in node.names]
    return names


def _imports(tree: ast.Module, module: str, is_package: bool) -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found += [(name, node.lineno) for name in _resolve(module, is_package, node)]
    return found


def _parameters(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    args = node.args
    positional = [*args.posonlyargs, *args.args]
    count = len(positional) + len(args.kwonlyargs) + (args.vararg is not None) + (args.kwarg is not None)
    if positional and positional[0].arg in ("self", "cls"):
        count -= 1
    return count


def _is_shim(tree: ast.Module, module: str, is_package: bool) -> bool:
    body = list(tree.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    if not body or is_package:
        return False
    imports_package = False
    for node in body:
        if isinstance(node, ast.ImportFrom):
            if node.module == "__future__":
                continue
            targets = _resolve(module, is_package, node)
            imports_package |= any(t.split(".")[0] == PACKAGE for t in targets)
        elif isinstance(node, ast.Import):
            imports_package |= any(a.name.split(".")[0] == PACKAGE for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            value = node.value
            if value is None or isinstance(value, (ast.Name, ast.Constant, ast.Attribute)):
                continue
            if isinstance(value, (ast.List, ast.Tuple)) and all(
                isinstance(e, ast.Constant) for e in value.elts
            ):
                continue  # __all__ = [...]
            if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "tuple":
                continue  # NAMES = tuple(list_names())
            return False
        else:
            return False
    return imports_package


def _public_functions(tree: ast.Module):
    """``(qualified name, node)`` of the module's public functions and public classes' public methods."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            yield node.name, node
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for item in node.body:
                if not isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) or item.name.startswith("_"):
                    continue
                if any(
                    isinstance(d, ast.Attribute) and d.attr in ("setter", "deleter")
                    for d in item.decorator_list
                ):
                    continue  # documented on the getter
                yield f"{node.name}.{item.name}", item


def _is_private_module(module: str) -> bool:
    return any(part.startswith("_") for part in module.split(".")[1:])


def layer_of(subpackage: str) -> int | None:
    """Index in :data:`LAYERS` of ``subpackage`` (``None`` when the table does not place it)."""
    for rank, members in enumerate(LAYERS):
        if subpackage in members:
            return rank
    return None


def _layering(graph: dict[str, set[str]], edges: dict[tuple[str, str], str]) -> tuple[list, list]:
    """Imports that break the layering rule, and sub-packages the table does not place."""
    upward, unplaced = [], set()
    for source in sorted(graph):
        if source == "__init__":
            continue
        low = layer_of(source)
        if low is None:
            unplaced.add(source)
            continue
        for target in sorted(graph[source]):
            high = layer_of(target)
            if high is None:
                unplaced.add(target)
            elif high >= low:
                kind = "same layer" if high == low else "upward"
                upward.append({"from": source, "to": target, "kind": kind, "where": edges[(source, target)]})
    return upward, sorted(unplaced)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def measure(root: Path) -> dict:
    src = root / "src"
    package = src / PACKAGE
    functions, files, parameters, shims, undocumented = [], [], [], [], []
    graph: dict[str, set[str]] = {}
    edges: dict[tuple[str, str], str] = {}
    # Names imported from the package itself (`__version__`) are not sub-packages.
    known = {_subpackage(_module_name(path, src)) for path in package.rglob("*.py")}
    for path in sorted(package.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(root).as_posix()
        tree = ast.parse(text, filename=rel)
        n_lines = len(text.splitlines())
        if n_lines > MAX_FILE_LINES:
            files.append({"where": f"{rel}:1", "lines": n_lines})
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                where = f"{rel}:{node.lineno}"
                if length > MAX_FUNCTION_LINES:
                    functions.append({"where": where, "name": node.name, "lines": length})
                n_params = _parameters(node)
                if n_params > MAX_PARAMETERS:
                    parameters.append({"where": where, "name": node.name, "parameters": n_params})
        module = _module_name(path, src)
        is_package = path.name == "__init__.py"
        if not _is_private_module(module):
            undocumented += [
                {"where": f"{rel}:{node.lineno}", "name": name}
                for name, node in _public_functions(tree)
                if ast.get_docstring(node) is None
            ]
        if _is_shim(tree, module, is_package):
            shims.append({"where": f"{rel}:1", "module": module})
        source = _subpackage(module)
        graph.setdefault(source, set())
        for target, lineno in _imports(tree, module, is_package):
            sub = _subpackage(target)
            if sub is None or sub == source or sub == "__init__" or sub not in known:
                continue
            graph[source].add(sub)
            edges.setdefault((source, sub), f"{rel}:{lineno}")
    cycles = []
    for component in _cycles(graph):
        members = set(component)
        links = [
            {"from": a, "to": b, "where": edges[(a, b)]}
            for a in component
            for b in sorted(graph[a] & members)
        ]
        cycles.append({"subpackages": component, "imports": links})
    by_number = {"functions": "lines", "files": "lines", "parameters": "parameters"}
    result = {"functions": functions, "files": files, "parameters": parameters}
    for key, number in by_number.items():
        result[key] = sorted(result[key], key=lambda item, n=number: -item[n])
    result["cycles"] = cycles
    result["shims"] = shims
    result["layering"], result["unplaced"] = _layering(graph, edges)
    result["undocumented"] = undocumented
    result["limits"] = {
        "function_lines": MAX_FUNCTION_LINES,
        "file_lines": MAX_FILE_LINES,
        "parameters": MAX_PARAMETERS,
    }
    return result


def report(result: dict) -> str:
    limits = result["limits"]
    lines = [f"functions over {limits['function_lines']} lines: {len(result['functions'])}"]
    lines += [f"  {f['where']}  {f['name']}  {f['lines']}" for f in result["functions"]]
    lines.append(f"files over {limits['file_lines']} lines: {len(result['files'])}")
    lines += [f"  {f['where']}  {f['lines']}" for f in result["files"]]
    lines.append(f"functions with more than {limits['parameters']} parameters: {len(result['parameters'])}")
    lines += [f"  {f['where']}  {f['name']}  {f['parameters']}" for f in result["parameters"]]
    lines.append(f"import cycles between sub-packages: {len(result['cycles'])}")
    for cycle in result["cycles"]:
        lines.append(f"  {' <-> '.join(cycle['subpackages'])}")
        lines += [f"    {link['from']} -> {link['to']}  {link['where']}" for link in cycle["imports"]]
    lines.append(f"shim modules (re-exports only): {len(result['shims'])}")
    lines += [f"  {s['where']}  {s['module']}" for s in result["shims"]]
    lines.append(f"imports against the layering rule: {len(result['layering'])}")
    lines += [f"  {x['from']} -> {x['to']} ({x['kind']})  {x['where']}" for x in result["layering"]]
    if result["unplaced"]:
        lines.append(f"sub-packages not in the layer table: {', '.join(result['unplaced'])}")
    lines.append(f"public functions without a docstring: {len(result['undocumented'])}")
    lines += [f"  {u['where']}  {u['name']}" for u in result["undocumented"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Import cycles count imports inside functions (lazy imports) as well as module-level ones.",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="repository root (default: .)")
    args = parser.parse_args(argv)
    if not (args.root / "src" / PACKAGE).is_dir():
        parser.error(f"{args.root}: no src/{PACKAGE}/ here; run from the repository root or pass --root")
    result = measure(args.root)
    try:
        print(json.dumps(result, indent=2) if args.json else report(result))
    except BrokenPipeError:  # piped into head
        sys.stderr.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
