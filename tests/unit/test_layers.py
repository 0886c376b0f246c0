"""The house stays in order: the import graph of ``src/pinpanel``, read from the source.

docs/DESIGN.md says imports run one way::

    cli -> runtime -> adapters (web, mqtt) -> board -> (hardware, store) -> config

with a few leaf modules (errors, the change vocabulary, the package's version) that anyone
may import. This test parses every module with :mod:`ast` (imports inside functions and
``TYPE_CHECKING`` blocks count too: a lazy import is still a dependency), and fails on any
cycle, any arrow against that direction, any import between sibling adapters, and any module
that has no place in :data:`LAYERS` yet (a new module is placed on purpose, not by accident).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "pinpanel"

#: Module (or package prefix) -> its layer. A module may import only from a lower layer,
#: from a leaf, or from its own package (e.g. ``pinpanel.web.api`` from ``pinpanel.web.x``).
#: The longest matching prefix decides.
LAYERS: dict[str, int] = {
    "pinpanel.__main__": 90,
    "pinpanel.cli": 80,
    # tools a command runs besides the server (each opens its own runtime or client)
    "pinpanel.fleet": 70,
    "pinpanel.service": 70,
    "pinpanel.client": 70,
    "pinpanel.local_broker": 70,
    "pinpanel.boot_config": 70,
    "pinpanel.runtime": 60,
    # adapters: siblings, never importing each other
    "pinpanel.web": 50,
    "pinpanel.mqtt": 50,
    # one page and API over every pinpanel on the broker
    "pinpanel.hub": 50,
    # this pinpanel announced on the LAN (mDNS), beside the web server it names
    "pinpanel.lan": 50,
    # a HomeKit bridge for Apple's Home app (HAP-python on the server's loop)
    "pinpanel.homekit": 50,
    # what the runtime and adapters share below the board's users
    "pinpanel.first_start": 45,
    # a client of the board, like an adapter; the board never imports it
    "pinpanel.automation": 45,
    "pinpanel.auth": 40,
    "pinpanel.telemetry": 40,
    "pinpanel.changelog": 40,
    "pinpanel.logs": 40,
    # the running server's config file: saved, re-read, handed to the board as a diff
    "pinpanel.live_config": 35,
    "pinpanel.board": 30,
    # the readings path, beside the board (never through it): sampler and one module a kind
    "pinpanel.sensors": 30,
    "pinpanel.events": 25,
    # what a pin's value means by kind (on/off, a pwm level, a servo angle)
    "pinpanel.levels": 22,
    "pinpanel.hardware": 20,
    # which /dev/gpiochipN is the Pi's (labels, not numbers); hardware opens lgpio on it
    "pinpanel.chips": 15,
    "pinpanel.store": 20,
    "pinpanel.lock": 20,
    # the backup archive: a store snapshot and the config, restored under the lock
    "pinpanel.backup": 25,
    # the TOML file edited with its comments kept, written atomically
    "pinpanel.config_file": 12,
    # the config package: types, sections, pins, model, schema/cross-field passes, loader;
    # its modules import each other by full path (through the package face is a cycle)
    "pinpanel.config": 10,
    "pinpanel.sensor_config": 8,
    "pinpanel.schedule_config": 8,
    "pinpanel.rule_config": 9,
    # how config declares a setting; imports nothing of pinpanel
    "pinpanel.settings": 5,
}
#: Leaves: importable from anywhere, importing nothing of pinpanel but other leaves.
LEAVES = frozenset({"pinpanel", "pinpanel.errors", "pinpanel.changes",
                    # the fleet's words on the broker, shared by mqtt (the Pi) and hub
                    "pinpanel.fleetwire",
                    # zones by name, UTC without the tz database (config and schedules)
                    "pinpanel.timezones",
                    # a bounded queue per stream reader: readings and automation notices
                    "pinpanel.feed"})
#: Packages whose modules are siblings that must not import each other.
ADAPTERS = ("pinpanel.web", "pinpanel.mqtt", "pinpanel.hub", "pinpanel.lan",
            "pinpanel.homekit")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> Iterator[str]:
    """Every pinpanel module ``name`` imports, resolved to a module that exists."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from pinpanel.web import api`` imports the module pinpanel.web.api
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                       for alias in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target.startswith("pinpanel") and target != name:
                yield target


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: set(imports_of(name, path, known)) for name, path in found.items()}


def layer_of(name: str) -> int | None:
    best = max((p for p in LAYERS if name == p or name.startswith(p + ".")), key=len,
               default=None)
    return None if best is None else LAYERS[best]


def package_of(name: str) -> str:
    best = max((p for p in LAYERS if name == p or name.startswith(p + ".")), key=len,
               default=name)
    return best


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read_from_real_imports() -> None:
    edges = graph()
    assert "pinpanel.board" in edges["pinpanel.runtime"]
    assert "pinpanel.config" in edges["pinpanel.board.board"]


def test_there_is_no_import_cycle_anywhere() -> None:
    assert cycles(graph()) == []


def test_every_module_has_a_layer() -> None:
    unplaced = [name for name in modules() if name not in LEAVES and layer_of(name) is None]
    assert unplaced == [], "place these in LAYERS in tests/unit/test_layers.py"


def test_leaves_import_only_leaves() -> None:
    edges = graph()
    assert set(edges) >= LEAVES, "a leaf named in LEAVES is missing from src"
    bad = {leaf: sorted(edges[leaf] - LEAVES) for leaf in LEAVES if edges[leaf] - LEAVES}
    assert bad == {}


def test_imports_run_one_way() -> None:
    against = []
    for name, targets in graph().items():
        if name in LEAVES:
            continue
        mine, home = layer_of(name), package_of(name)
        for target in targets:
            if target in LEAVES or package_of(target) == home:
                continue
            theirs = layer_of(target)
            if mine is None or theirs is None or theirs >= mine:
                against.append(f"{name} -> {target}")
    assert sorted(against) == []


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_adapters_never_import_each_other(adapter: str) -> None:
    others = [a for a in ADAPTERS if a != adapter]
    bad = [f"{name} -> {target}" for name, targets in graph().items()
           if name == adapter or name.startswith(adapter + ".")
           for target in targets if any(target == o or target.startswith(o + ".")
                                        for o in others)]
    assert bad == []


def test_nothing_imports_the_cli() -> None:
    bad = [f"{name} -> {target}" for name, targets in graph().items()
           if not (name == "pinpanel.cli" or name.startswith("pinpanel.cli.")
                   or name == "pinpanel.__main__")
           for target in targets if target == "pinpanel.cli" or target.startswith("pinpanel.cli.")]
    assert bad == []


def test_the_checker_catches_a_cycle_and_a_back_arrow() -> None:
    """The rules themselves, on a made-up graph, so a vacuous pass cannot hide."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer_of("pinpanel.board") is not None
    assert layer_of("pinpanel.config") is not None
    board, config = layer_of("pinpanel.board"), layer_of("pinpanel.config")
    assert board is not None and config is not None and config < board
