"""pytest loads the plugin in every session of the environment: it must not import Dask."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import chaos


def test_importing_the_package_and_its_plugin_imports_no_dask() -> None:
    code = textwrap.dedent("""
        import sys
        import chaos.testing, chaos.testing.plugin, chaos.testing.command
        from chaos.testing import (SafetyReport, Finding, assert_preemption_safe,
                                   check_preemption_safety)
        loaded = sorted(name for name in sys.modules if name.split(".")[0] in
                        ("dask", "distributed", "resilience"))
        print(loaded)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == "[]", done.stdout


def test_the_chaos_facade_still_gives_every_public_name() -> None:
    # chaos/__init__ imports its names when first asked for (so that the line above holds).
    for name in chaos.__all__:
        assert getattr(chaos, name) is not None, name
    assert set(dir(chaos)) >= set(chaos.__all__)
