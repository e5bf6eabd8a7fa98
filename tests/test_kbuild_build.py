"""hwemu.kbuild's build: generated headers in step, the cache key, gcc's words."""
import importlib
import time

import pytest

from hwemu import kbuild
from hwemu.kbuild import headers

build = importlib.import_module("hwemu.kbuild.build")


def test_generated_headers_are_in_step():
    """hwemu/include/generated holds what hwemu's Python says (python -m
    hwemu.kbuild.headers writes it again)."""
    for path, text in headers.generated().items():
        assert path.read_text() == text, f"{path} is out of step: regenerate it"


def test_every_call_has_its_slot_in_rt_h():
    from hwemu.kbuild.calls import calls
    rt_h = (headers.GENERATED / "hwemu" / "rt.h").read_text()
    for c in calls():
        assert f"(*{c.name})(" in rt_h


def test_a_local_header_is_part_of_the_build(hwemu_machine, tmp_path):
    """Editing a header beside the source rebuilds the module (the cache key covers
    the #include "..." files of the source's tree)."""
    (tmp_path / "answer.h").write_text("#define ANSWER 41\n")
    src = tmp_path / "answer.c"
    src.write_text('#include "answer.h"\nint answer(void)\n{\n\treturn ANSWER;\n}\n')
    assert kbuild.load(src).answer() == 41
    (tmp_path / "answer.h").write_text("#define ANSWER 42\n")
    assert kbuild.load(src).answer() == 42


def test_gcc_warnings_are_kept_and_shown_once(hwemu_machine, tmp_path, capsys):
    src = tmp_path / f"warned_{time.monotonic_ns()}.c"   # a new build, not the cache's
    src.write_text("int warned(void)\n{\n\tint unused;\n\treturn 1;\n}\n")
    mod = kbuild.load(src)
    assert mod.warned() == 1
    assert f"{src.name}:3:13: warning: unused variable" in mod.warnings
    assert "unused variable" in capsys.readouterr().err
    kbuild.load(src)   # from the cache: not shown again
    assert "unused variable" not in capsys.readouterr().err


def test_functions_of_an_included_c_file_are_exported(hwemu_machine, tmp_path):
    (tmp_path / "inner.c").write_text("int inner(int x)\n{\n\treturn x * 2;\n}\n")
    src = tmp_path / "outer.c"
    src.write_text('#include "inner.c"\nint outer(int x)\n{\n\treturn inner(x) + 1;\n}\n')
    mod = kbuild.load(src)
    assert (mod.inner(4), mod.outer(4)) == (8, 9)


@pytest.mark.parametrize("line, exported", [
    ("/* a.c:3:NF */ extern int f (int x); /* (x) int x; */", ["f"]),
    ("/* a.c:3:NF */ static int f (int x); /* (x) int x; */", []),
    ("/* a.c:3:NC */ extern int g (void); /*  */", []),   # declared, not defined
    ("/* a.c:3:NF */ extern void *h (struct mempool *pool, void (*fn)(void *, int), "
     "unsigned int n); /* (pool, fn, n) */", ["h"]),
])
def test_exports_are_the_defined_non_static_functions(line, exported):
    exports, skipped = build.exports_of(line)
    assert [e.name for e in exports] == exported and skipped == []


def test_a_struct_by_value_stays_callable_from_c_only():
    exports, skipped = build.exports_of(
        "/* a.c:1:NF */ extern int f (struct point p); /* (p) struct point p; */")
    assert (exports, skipped) == ([], ["f"])


def test_the_h_function_pointer_parameter_is_a_pointer():
    [e], _ = build.exports_of(
        "/* a.c:3:NF */ extern void *h (struct mempool *pool, void (*fn)(void *, int), "
        "unsigned int n); /* (pool, fn, n) */")
    assert e.params == ["struct mempool *pool", "void (*fn)(void *, int)", "unsigned int n"]
    assert [build._is_pointer(p) for p in e.params] == [True, True, False]


def test_allocation_profiling_charges_the_c_line(tmp_path):
    """alloc_hooks() in C: with vm.mem_profiling, /proc/allocinfo names the C call
    site; without it, the C makes no call for it (nothing is charged)."""
    import hwemu
    src = tmp_path / "grab.c"
    src.write_text("#include <linux/slab.h>\n\nvoid *grab(void)\n{\n"
                   "\treturn kmalloc(40, GFP_KERNEL);\n}\n")
    for profiling in (True, False):
        with hwemu.boot("tiny", overrides={"vm.mem_profiling": profiling}) as machine:
            mod = kbuild.load(src)
            p = mod.grab()
            info = machine.procfs.read("/proc/allocinfo")
            charged = [line for line in info.splitlines() if "grab.c:5 func:grab" in line]
            assert bool(charged) == profiling, info
            if profiling:
                assert charged[0].split()[:2] == ["64", "1"]   # kmalloc-64 for 40 bytes
            hwemu.kfree(p)
