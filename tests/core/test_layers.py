"""The apps stand in layers (README, "Layout"): each imports only the apps below it."""

import ast
from pathlib import Path

import esante

SRC = Path(esante.__file__).parent

#: Bottom first. An app may import the apps before it in this list, never those after it.
LAYERS = [
    "audit",
    "tlog",
    "core",
    "patients",
    "accounts",
    "access",
    "documents",
    "dispensing",
    "espace",
    "fhir",
    "demo",
]


def _imported_apps(path: Path) -> set[str]:
    """The ``esante`` apps a module imports, at module level or inside functions (imports only
    for type checking excepted)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                names = [child.module]
            for name in names:
                parts = name.split(".")
                if parts[0] == "esante" and len(parts) > 1:
                    found.add(parts[1])
            visit(child)

    visit(tree)
    return found


#: The only upward imports, each with its reason. ``esante verify_audit`` checks the chain and the
#: public log's tree over the same rows in one pass (issues 14 and 15: 1 M events at hashing
#: speed): the trail's reader joins each event's leaf, and the walk feeds the leaves to the log's
#: tree check. Nothing else in ``audit`` may know of ``tlog``.
UPWARD_ALLOWED = {
    "audit/chain.py imports esante.tlog",  # stored_rows joins the leaves (LogLeaf's table)
    "audit/verification.py imports esante.tlog",  # verify_chain's tree walk (tlog.verification)
}


def test_every_app_imports_only_the_apps_below_it() -> None:
    upward = []
    for index, app in enumerate(LAYERS):
        below = set(LAYERS[:index])
        for path in sorted((SRC / app).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for imported in _imported_apps(path) & set(LAYERS):
                if imported != app and imported not in below:
                    upward.append(f"{path.relative_to(SRC)} imports esante.{imported}")
    assert sorted(set(upward) - UPWARD_ALLOWED) == []
    assert UPWARD_ALLOWED <= set(upward), "an allowed exception no longer exists: remove it from the list"


def test_every_app_is_in_a_layer() -> None:
    apps = {path.parent.name for path in SRC.glob("*/apps.py")}
    assert apps == set(LAYERS)
