"""Imports point one way: app -> transports -> actions and auth -> notify ->
storage -> the base modules (config, errors, clock, validation, schemas,
signed_urls, keystone_api, telemetry), with no cycle between modules and no transport importing
another; the actions reach storage through its contract only. Read from the
source with `ast`, function-level and type-only imports included."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Lowest first. A unit is a package of chalicelib, or a base module.
LAYERS = [
    {"chalicelib.config", "chalicelib.errors", "chalicelib.clock", "chalicelib.validation",
     "chalicelib.schemas", "chalicelib.signed_urls", "chalicelib.keystone_api",
     "chalicelib.cors", "chalicelib.throttle", "chalicelib.telemetry", "chalicelib.parameters"},
    {"chalicelib.storage"},
    {"chalicelib.notify"},
    {"chalicelib.actions", "chalicelib.auth"},
    {"chalicelib.rest", "chalicelib.websocket"},
    {"app"},
]
# Only storage speaks DynamoDB (pynamodb); besides it, notify (mail) and app
# (the websocket API's session) use AWS; transports and actions no AWS SDK.
SDK_ALLOWED = {"pynamodb": {"chalicelib.storage"},
               "boto3": {"chalicelib.storage", "chalicelib.notify", "chalicelib.parameters", "app"},
               "botocore": {"chalicelib.storage", "chalicelib.notify", "chalicelib.parameters",
                            "app"}}
SDK_ROOTS = set(SDK_ALLOWED)
# What the actions may import of storage: the contract, its errors and the
# entry that builds the driver from settings; never a store's module.
STORAGE_CONTRACT = {"chalicelib.storage", "chalicelib.storage.base",
                    "chalicelib.storage.errors", "chalicelib.storage.dynamodb"}


def unit_of(module):
    for layer in LAYERS:
        for unit in layer:
            if module == unit or module.startswith(unit + "."):
                return unit
    return None


def rank_of(unit):
    return next(index for index, layer in enumerate(LAYERS) if unit in layer)


def module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path, name):
    """Every module `path` (module `name`) imports, anywhere in it."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found.add(base)
            # `from chalicelib.storage import claims` imports a module too.
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def project_graph():
    """{module: modules it imports}, for app.py and chalicelib."""
    paths = [ROOT / "app.py", *sorted((ROOT / "chalicelib").rglob("*.py"))]
    names = {module_name(path): path for path in paths}
    graph = {}
    for name, path in names.items():
        targets = imports_of(path, name)
        # A package naming its own modules (`from chalicelib.auth import
        # keystone` in its __init__) imports them, not itself.
        graph[name] = ({target for target in targets if target in names and target != name}
                       | {target.split(".")[0] for target in targets} & SDK_ROOTS)
    return graph


def violations(graph):
    """What breaks the rule in `graph`: upward or sideways imports between
    units, AWS SDK imports outside storage and notify, actions importing a
    storage module other than the contract, and import cycles."""
    found = []
    for module, targets in graph.items():
        source = unit_of(module)
        for target in sorted(targets):
            if target.split(".")[0] in SDK_ROOTS:
                if source not in SDK_ALLOWED[target.split(".")[0]]:
                    found.append(f"{module} imports the AWS SDK ({target})")
                continue
            unit = unit_of(target)
            if unit is None or unit == source:
                continue
            if rank_of(unit) > rank_of(source):
                found.append(f"{module} imports {target}, a layer above it")
            elif rank_of(unit) == rank_of(source) and rank_of(source) > 0:
                found.append(f"{module} imports {target}, beside it")
            if (source == "chalicelib.actions" and unit == "chalicelib.storage"
                    and target not in STORAGE_CONTRACT):
                found.append(f"{module} imports {target}, not the storage contract")
    found += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(graph)]
    return found


def cycles(graph):
    """One cycle through each strongly connected group of modules."""
    seen, found = set(), []

    def walk(module, path):
        for target in sorted(graph.get(module, ())):
            if target not in graph:
                continue
            if target in path:
                cycle = path[path.index(target):] + [target]
                key = frozenset(cycle)
                if key not in seen:
                    seen.add(key)
                    found.append(cycle)
            elif target not in done:
                walk(target, path + [target])
        done.add(module)

    done = set()
    for module in sorted(graph):
        if module not in done:
            walk(module, [module])
    return found


def test_the_project_imports_point_one_way():
    assert violations(project_graph()) == []


def test_the_rule_finds_what_breaks_it():
    graph = {
        "app": {"chalicelib.rest"},
        "chalicelib.rest": {"chalicelib.actions.queues", "chalicelib.websocket.push"},
        "chalicelib.websocket.push": set(),
        "chalicelib.actions.queues": {"chalicelib.storage.queues", "boto3",
                                      "chalicelib.storage.base", "chalicelib.storage.dynamodb"},
        "chalicelib.storage.queues": {"chalicelib.storage.claims", "chalicelib.actions.queues"},
        "chalicelib.storage.claims": {"chalicelib.storage.queues", "pynamodb.models"},
        "chalicelib.notify.stream": {"pynamodb"},
    }
    found = violations(graph)
    assert "chalicelib.rest imports chalicelib.websocket.push, beside it" in found
    assert "chalicelib.actions.queues imports the AWS SDK (boto3)" in found
    assert ("chalicelib.storage.queues imports chalicelib.actions.queues, a layer above it"
            in found)
    assert any(line.startswith("import cycle: ") and "chalicelib.storage.claims" in line
               for line in found)
    assert "chalicelib.notify.stream imports the AWS SDK (pynamodb)" in found
    assert ("chalicelib.actions.queues imports chalicelib.storage.queues, not the storage "
            "contract" in found)
    assert not any("storage.base, not" in line or "storage.dynamodb, not" in line
                   for line in found)
    assert not any("storage.claims imports the AWS SDK" in line for line in found)
