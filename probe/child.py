"""Entry point of the probe's child process: `python child.py CONFIG_JSON`.

Runs under the user's interpreter (`--python`), which may not have mlplint installed: it loads the
probe's own folder as a private package by path and needs torch and the standard library only.
"""

import importlib
import importlib.util
import os
import sys

PACKAGE = "_mlplint_probe"


def load_instrumentation():
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location(PACKAGE, os.path.join(here, "__init__.py"), submodule_search_locations=[here])
    package = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = package
    spec.loader.exec_module(package)
    return importlib.import_module(f"{PACKAGE}.instrument")


if __name__ == "__main__":
    sys.path.pop(0)  # the probe's folder must not shadow the user's modules; the session adds the script's
    instrument = load_instrumentation()
    status = instrument.main(sys.argv[1:])
    # The stats are written: leave now, so nothing after the step budget runs (threads, atexit).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
