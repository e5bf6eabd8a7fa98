"""The import structure: no circles, and nothing imports from a layer above its own.

The layers, bottom to top, are DESIGN.md's data flow (config -> machine -> allocators ->
KASAN -> mempool -> runs/CLI) with the pieces every layer needs below them. Every
import counts, the ones inside functions too: a lazy import is still a dependency.
"""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent

LAYERS = (
    # what every module may raise, name or log
    ("hwemu.errors", "hwemu.current", "hwemu.printk", "hwemu.page_types"),
    # kernel facts and report text, no machine
    ("hwemu.bug", "hwemu.gfp", "hwemu.mmzone", "hwemu.fault_attr", "hwemu.vmstat",
     "hwemu.timer", "hwemu.strategy", "hwemu.jump_label", "hwemu.kasan_shadow"),
    # the config schema and its YAML source
    ("hwemu.config",),
    # the hardware and the kernel core under the allocators
    ("hwemu.vmem", "hwemu.physmem", "hwemu.page", "hwemu.sched", "hwemu.access",
     "hwemu.spinlock", "hwemu.wait", "hwemu.highmem", "hwemu.stackdepot",
     "hwemu._speedups", "hwemu.alloc_tag", "hwemu.fault_inject"),
    # the allocators
    ("hwemu.page_alloc", "hwemu.slab", "hwemu.vmalloc", "hwemu.util", "hwemu.vmscan",
     "hwemu.oom_kill", "hwemu.procfs"),
    # KASAN
    ("hwemu.kasan",),
    # boot: builds everything above; drgn's view of what it built
    ("hwemu.machine", "hwemu.drgn_program"),
    # the mempool port
    ("mempool",),
    # kernel C on the machine (it may stand in for the mempool port)
    ("hwemu.kbuild",),
    # what users run: the package API, runs, the CLI, the pytest plugin
    ("hwemu", "hwemu.explore", "hwemu.runs", "hwemu.cli", "hwemu.pytest_plugin",
     "hwemu.__main__", "hwemu.shell"),
)


def layer_of(module: str) -> int:
    """The layer of ``module``: the one naming it or its nearest parent package."""
    best = None
    for i, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and \
                    (best is None or len(name) > len(best[1])):
                best = (i, name)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best[0]


def modules():
    """``(module name, path)`` of every module of hwemu and mempool."""
    for package in ("hwemu", "mempool"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(parts), path


def imports(module: str, path: pathlib.Path) -> set[str]:
    """The hwemu/mempool modules ``module`` imports (anywhere in the file)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module
            # "from . import x" imports submodule x; "from .m import f" imports m
            names = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in KNOWN else prefix
                     for a in node.names]
        else:
            continue
        found |= {n for n in names if n.split(".")[0] in ("hwemu", "mempool")}
    known = KNOWN
    # keep the longest known module each name denotes
    resolved = set()
    for name in found:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != module:
            resolved.add(name)
    return resolved


KNOWN = {m for m, _ in modules()} | {"hwemu._speedups"}   # the optional C extension
GRAPH = {m: imports(m, p) for m, p in modules()}


def test_every_module_has_a_layer():
    for module in GRAPH:
        layer_of(module)


def test_nothing_imports_from_a_layer_above():
    upward = [f"{m} ({LAYERS[layer_of(m)][0]}...) imports {d} ({LAYERS[layer_of(d)][0]}...)"
              for m, deps in GRAPH.items() for d in deps if layer_of(d) > layer_of(m)]
    assert not upward, "\n".join(upward)


def test_no_import_circles():
    """Tarjan's strongly connected components: every one must be a single module."""
    index, low, stack, on, circles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in GRAPH.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                circles.append(sorted(scc))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert not circles, circles
