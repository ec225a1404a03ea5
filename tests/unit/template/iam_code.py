"""What a function's code can reach, read statically from its handler's module through the `chorus` package.

The reach is a call graph of names, not of values: starting from every top-level definition of
the handler's module, `functions/<name>/<module>.py` (`app.py` for most; the handler and the routes
its decorators register), a definition reaches every module-level function or class of the
`chorus` package it names (`module.name` after `from chorus.x import module`, or `name` after
`from chorus.x.module import name`) and of the modules of its own code folder, which Lambda puts
first on sys.path (`import store`, `from drift import flatten` in functions/monitor), a
class reaches everything its methods name, and naming a module runs its import-time code. Every
branch counts, so the reach over-approximates what a run can do; the tests name the few places
where a branch can never be taken by that function, each with its reason.

What keeps the graph honest, and a test checks: AWS is only called through
`chorus.core.clients.client(...)` (no other module imports boto3 or botocore's session), inside
top-level functions, never in a method, where a call through an instance would not be followed.
The settings module is a leaf: naming one of its classes counts as loading it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PACKAGE_ROOT = ROOT / "layers" / "chorus"
FUNCTIONS_ROOT = ROOT / "functions"
SETTINGS_MODULE = "chorus.core.settings"
CLIENTS_MODULE = "chorus.core.clients"

Definition = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def module_path(name: str) -> Path | None:
    """The file of a module: a package of the layer, or a module of a function's code folder."""
    if name.startswith("functions."):
        path = ROOT / Path(*name.split(".")).with_suffix(".py")
        return path if path.is_file() else None
    base = PACKAGE_ROOT / Path(*name.split("."))
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def handler_module(code_uri: str, handler: str) -> str:
    """`functions/new_prediction` and `app.handler` -> `functions.new_prediction.app`;
    `functions/monitor` and `capture.handler` -> `functions.monitor.capture`."""
    module, _, _ = handler.rpartition(".")
    return ".".join([*Path(code_uri).parts, *module.split(".")])


def _folder_module(importer: str, name: str) -> str | None:
    """The module of the importer's own code folder that a top-level `import name` finds first
    (Lambda puts the function's package root ahead of the layer and site-packages), if any."""
    if not importer.startswith("functions."):
        return None
    candidate = f"{importer.rpartition('.')[0]}.{name}"
    return candidate if module_path(candidate) else None


@dataclass(frozen=True)
class Module:
    name: str
    tree: ast.Module
    definitions: dict[str, Definition]
    # local name -> (module, attribute); attribute None when the name is a module
    imports: dict[str, tuple[str, str | None]]

    def import_time_code(self) -> list[ast.AST]:
        """What runs on import: every statement but def and class bodies (decorators and bases run)."""
        code: list[ast.AST] = []
        for node in self.tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                code += [*node.decorator_list, *node.args.defaults, *node.args.kw_defaults]
            elif isinstance(node, ast.ClassDef):
                code += [*node.decorator_list, *node.bases]
            else:
                code.append(node)
        return [node for node in code if node is not None]


@cache
def load_module(name: str) -> Module:
    path = module_path(name)
    assert path is not None, f"no module {name}"
    tree = ast.parse(path.read_text(), filename=str(path))
    definitions = {
        node.name: node for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }
    imports: dict[str, tuple[str, str | None]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert not node.level, f"{name}: relative imports are not followed"
            local = _folder_module(name, node.module or "")
            if local is not None:  # `from drift import flatten` in functions/monitor
                for alias in node.names:
                    imports[alias.asname or alias.name] = (local, alias.name)
                continue
            if not (node.module or "").startswith("chorus"):
                continue
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                target = (submodule, None) if module_path(submodule) else (str(node.module), alias.name)
                imports[alias.asname or alias.name] = target
        elif isinstance(node, ast.Import):
            for alias in node.names:
                local = _folder_module(name, alias.name)
                if local is not None:  # `import store` in functions/monitor
                    imports[alias.asname or alias.name] = (local, None)
                elif alias.name.startswith("chorus"):
                    assert alias.asname, f"{name}: `import {alias.name}` without `as` is not followed"
                    imports[alias.asname] = (alias.name, None)
    return Module(name, tree, definitions, imports)


def _names(module: Module, code: list[ast.AST]) -> Iterator[tuple[str, str | None]]:
    """The (module, name) pairs some code refers to; (module, None) is a module's import-time code."""
    for root in code:
        for node in ast.walk(root):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                target = module.imports.get(node.value.id)
                if target is not None and target[1] is None:
                    yield target[0], node.attr
            if isinstance(node, ast.Name):
                if node.id in module.imports:
                    yield module.imports[node.id]
                elif node.id in module.definitions:
                    yield module.name, node.id


@cache
def _reached(app: str, excluded: frozenset[str]) -> frozenset[tuple[str, str | None]]:
    entry = load_module(app)
    pending: list[tuple[str, str | None]] = [(app, None), *((app, name) for name in entry.definitions)]
    seen: set[tuple[str, str | None]] = set()
    while pending:
        node = pending.pop()
        if node in seen:
            continue
        seen.add(node)
        for target in _references(*node, excluded):
            pending += [target, (target[0], None)]
    return frozenset(seen)


def _code(module_name: str, name: str | None, excluded: frozenset[str]) -> tuple[Module | None, list[ast.AST]]:
    """The code a reached node runs; none for the settings module (a leaf) and excluded definitions."""
    if module_name == SETTINGS_MODULE or module_path(module_name) is None:
        return None, []
    module = load_module(module_name)
    if name is None:
        return module, module.import_time_code()
    if name in module.definitions and f"{module_name}.{name}" not in excluded:
        return module, [module.definitions[name]]
    return module, []


def _references(module_name: str, name: str | None, excluded: frozenset[str]) -> Iterator[tuple[str, str | None]]:
    module, code = _code(module_name, name, excluded)
    if module is None:
        return
    if name is not None:
        yield module_name, None
        if name not in module.definitions and module_path(f"{module_name}.{name}"):
            yield f"{module_name}.{name}", None  # a submodule named as an attribute
    yield from _names(module, code)


def reach(app: str, excluded: frozenset[str] = frozenset()) -> frozenset[str]:
    """Every `module.name` a function's code can reach from its app module (and `module` for each
    module whose import-time code runs). The settings module is a leaf: its classes are what is
    loaded. An `excluded` definition is reached but not followed (a branch the function never takes)."""
    return frozenset(m if n is None else f"{m}.{n}" for m, n in _reached(app, excluded))


def settings_loaded(app: str, excluded: frozenset[str] = frozenset()) -> frozenset[str]:
    """The settings classes a function's code can load (reached names of the settings module)."""
    prefix = SETTINGS_MODULE + "."
    return frozenset(
        name.removeprefix(prefix)
        for name in reach(app, excluded)
        if name.startswith(prefix) and name.removeprefix(prefix).endswith("Settings")
    )


def all_modules() -> list[str]:
    """Every module of the layer package and every module of every function's code folder."""
    names = [
        ".".join(path.relative_to(PACKAGE_ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in sorted((PACKAGE_ROOT / "chorus").rglob("*.py"))
    ]
    names += [".".join(path.relative_to(ROOT).with_suffix("").parts) for path in sorted(FUNCTIONS_ROOT.glob("*/*.py"))]
    return names


def aws_callers() -> dict[str, list[str]]:
    """`module.function` -> where it calls `client(...)`; a call outside a top-level function is
    reported under `module.<where>` so a test can refuse it."""
    callers: dict[str, list[str]] = {}
    for name in all_modules():
        if name == CLIENTS_MODULE:
            continue
        module = load_module(name)
        local = {k for k, (m, a) in module.imports.items() if (m, a) == (CLIENTS_MODULE, "client")}
        if not local:
            continue
        owners: dict[int, str] = {}
        for node in module.tree.body:
            owner = node.name if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) else None
            if isinstance(node, ast.ClassDef):
                owner = f"<method of {node.name}>"
            for inner in ast.walk(node):
                owners[id(inner)] = owner or "<import time>"
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in local:
                service = ast.unparse(node.args[0]) if node.args else "?"
                callers.setdefault(f"{name}.{owners[id(node)]}", []).append(service)
    return callers


def attributes_read(app: str, excluded: frozenset[str] = frozenset()) -> frozenset[str]:
    """Every attribute name (`x.name`) the reached code reads, the settings module's own excepted."""
    names: set[str] = set()
    for module_name, name in _reached(app, excluded):
        _, code = _code(module_name, name, excluded)
        names.update(node.attr for root in code for node in ast.walk(root) if isinstance(node, ast.Attribute))
    return frozenset(names)


def boto3_importers() -> list[str]:
    """Modules other than the clients module that import boto3's client factories (and could call
    AWS unseen); helpers such as boto3.dynamodb.types are fine."""
    found = []
    for name in all_modules():
        if name == CLIENTS_MODULE:
            continue
        for node in ast.walk(load_module(name).tree):
            imported = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                imported = [node.module or ""]
            if any(i in ("boto3", "boto3.session", "botocore.session", "aioboto3") for i in imported):
                found.append(name)
    return found
