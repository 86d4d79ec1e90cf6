"""How fast `mlplint check` is, as ratios to a bare LibCST parse of the same source measured in the
same run (machines are noisy; ratios travel better than seconds).

    python benchmarks/check_speed.py                          # everything, sources under /tmp/repos
    python benchmarks/check_speed.py --cases growth --sizes 500,2000 --timeout 120
    python benchmarks/check_speed.py --repos DIR --cases startup,corpus

Cases (each skipped with a message when its sources are missing):
  growth   one file of 500, 2,000, 4,000, 8,000 lines made by joining real training scripts
           (pytorch/examples): check time, per-line cost and its growth relative to the smallest size,
           and the peak memory of the process (--sizes 100000 for the issue's 100,000-line file);
           measured inside one child process per size, so start-up does not hide the per-line cost
  repeated the same, from a 2,000-line cycle of those scripts joined again and again (a long
           notebook, scripts pasted into one file): the same module-level names defined once per copy
  big      timm's vision_transformer.py: in-process ratio and whole-CLI ratio
  corpus   every .py file under --repos, and pytorch/examples + nanoGPT alone: the CLI cold (no cache,
           all cores) and warm (a second run over a filled cache), against one process that parses them all
  startup  the CLI on one small script (pytorch/examples mnist/main.py) against a process that parses it
  phases   where the time of an in-process check goes, summed over the pytorch/examples + nanoGPT files:
           ast guard, LibCST parse, the ScriptFacts walk (index, scopes), positions (only for files with
           findings), and the rest (rules, suppressions, findings)
In-process figures are CPU seconds. CLI figures are wall-clock seconds of a fresh process
(interpreter start-up and imports included), the median of --repeat runs where a run is short, with
the CPU seconds of that process and its workers beside them: on a loaded machine the CPU ratios are
the ones to trust, on a quiet one the wall-clock ratios say what a user waits.
"""

from __future__ import annotations

import argparse
import ast
import compileall
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
REPEATED_CYCLE = 2_000  # lines of distinct scripts the `repeated` case joins again and again
BARE_PARSE = (
    "import sys, libcst\n"
    "for path in open(sys.argv[1]).read().splitlines():\n"
    "    libcst.parse_module(open(path, encoding='utf-8').read())\n"
)


# ------------------------------------------------------------------ measured in a child process

def _measure_in_process(list_file: str) -> None:
    """Child mode: check each listed file in this process; print JSON with the phase totals, in
    CPU seconds of this process (a loaded machine stretches wall-clock time, not these)."""
    import libcst

    import mlplint.lint.engine as engine
    from mlplint.lint.config import Settings
    from mlplint.lint.facts import core, positions
    from mlplint.lint.registry import all_rules

    all_rules()
    totals = {"guard": 0.0, "parse": 0.0, "index": 0.0, "positions": 0.0}

    def timed(phase, function):
        def wrapper(*args, **kwargs):
            start = time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                totals[phase] += time.process_time() - start
        return wrapper

    engine.compile = timed("guard", compile)  # CPython's parser, run first as a guard (engine.parse)
    bare_parse = libcst.parse_module
    libcst.parse_module = timed("parse", bare_parse)
    core.ScriptFacts.__init__ = timed("index", core.ScriptFacts.__init__)
    positions.Positions.__init__ = timed("positions", positions.Positions.__init__)
    texts = [open(path, encoding="utf-8").read() for path in open(list_file).read().splitlines()]
    bare = 0.0
    for text in texts:
        start = time.process_time()
        bare_parse(text)
        bare += time.process_time() - start
    check = 0.0
    for text in texts:
        start = time.process_time()
        engine.check_source(text, "case.py", Settings())
        check += time.process_time() - start
    totals["rest"] = check - sum(totals.values())
    print(json.dumps({"files": len(texts), "lines": sum(t.count("\n") for t in texts),
                      "bare_parse": bare, "check": check, "phases": totals,
                      "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


# ------------------------------------------------------------------ helpers of the parent

class Timeout(Exception):
    pass


def _write_list(paths: list[str], scratch: Path, name: str) -> str:
    list_file = scratch / name
    list_file.write_text("\n".join(paths) + "\n")
    return str(list_file)


def in_process(paths: list[str], scratch: Path, timeout: float) -> dict:
    command = [sys.executable, __file__, "--measure-in-process", _write_list(paths, scratch, "inprocess.txt")]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise Timeout() from None
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}")
    return json.loads(done.stdout)


def run_timed(command: list[str], timeout: float, cwd: Optional[Path] = None) -> tuple[float, float]:
    """Wall-clock and CPU seconds (user + system, the process and its workers) of one fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    try:
        subprocess.run(command, capture_output=True, timeout=timeout, check=False, cwd=cwd)
    except subprocess.TimeoutExpired:
        raise Timeout() from None
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def median_timed(command: list[str], repeat: int, timeout: float, cwd: Optional[Path] = None) -> tuple[float, float]:
    runs = [run_timed(command, timeout, cwd) for _ in range(repeat)]
    return statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs)


def bare_parse_command(paths: list[str], scratch: Path) -> list[str]:
    return [sys.executable, "-c", BARE_PARSE, _write_list(paths, scratch, "bare.txt")]


def mlplint_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "mlplint", "check", "--exit-zero", *args]


def python_files(folders: list[Path]) -> list[str]:
    from mlplint.lint.discovery import discover

    return discover([str(folder) for folder in folders]).files


def joined_scripts(sources: list[Path], lines: int) -> str:
    """Real training scripts one after another up to `lines` lines (the last one cut after a
    complete top-level statement), cycling through them again if they run out."""
    scripts = []
    for source in sources:
        text = "".join(l for l in source.read_text(encoding="utf-8").splitlines(keepends=True) if "__future__" not in l)
        text += "" if text.endswith("\n") else "\n"
        try:
            statements = ast.parse(text).body
        except SyntaxError:
            continue
        scripts.append((text.splitlines(keepends=True), [s.end_lineno for s in statements]))
    if not scripts:
        raise RuntimeError("no parseable scripts to join")
    out: list[str] = []
    index = 0
    while len(out) < lines:
        script, ends = scripts[index % len(scripts)]
        index += 1
        room = lines - len(out)
        if len(script) <= room:
            out += script
            continue
        cut = max((end for end in ends if end <= room), default=0)
        out += script[:cut]
        if cut == 0 and index > len(scripts) * 2:
            break
    return "".join(out)


def training_scripts(examples: Path) -> list[Path]:
    names = ("main.py", "train.py")
    return sorted(p for p in examples.rglob("*.py") if p.name in names or p.name.startswith("train"))


# ------------------------------------------------------------------ cases

def case_growth(options, scratch: Path) -> None:
    print("\n== growth: one file of joined training scripts (in-process, start-up excluded) ==")
    _growth_table(_growth_sources(options), options, scratch)


def case_repeated(options, scratch: Path) -> None:
    print(f"\n== repeated: the first {REPEATED_CYCLE:,} lines of those scripts joined again and again, as a long "
          "notebook does: every copy defines `model` and `train` and imports torch again ==")
    cycle, lines = [], 0
    for source in _growth_sources(options):
        if lines >= REPEATED_CYCLE:
            break
        cycle.append(source)
        lines += source.read_text(encoding="utf-8").count("\n")
    _growth_table(cycle, options, scratch)


def _growth_sources(options) -> list[Path]:
    sources = training_scripts(options.examples) if options.examples.is_dir() else []
    if not sources:
        sources = sorted((ROOT / "fixtures" / "clean").glob("*.py"))
        print(f"  ({options.examples} not found: joining the fixtures/clean scripts instead)")
    return sources


def _growth_table(sources: list[Path], options, scratch: Path) -> None:
    print(f"  {'lines':>6} {'parse s':>8} {'check s':>8} {'x parse':>8} {'ms/100 lines':>13} {'growth':>7} {'peak MiB':>9}")
    first_per_line = None
    for size in options.sizes:
        case = scratch / f"joined_{size}.py"
        case.write_text(joined_scripts(sources, size), encoding="utf-8")
        try:
            result = in_process([str(case)], scratch, options.timeout)
        except Timeout:
            print(f"  {size:>6} timed out after {options.timeout:.0f} s")
            continue
        per_line = result["check"] / result["lines"]
        first_per_line = first_per_line or per_line
        print(f"  {result['lines']:>6} {result['bare_parse']:>8.3f} {result['check']:>8.2f} "
              f"{result['check'] / result['bare_parse']:>7.1f}x {per_line * 100_000:>13.1f} {per_line / first_per_line:>6.2f}x "
              f"{result['peak_mib']:>9.0f}")


def case_big(options, scratch: Path) -> None:
    print("\n== big real file ==")
    if not options.big_file.is_file():
        print(f"  skipped: {options.big_file} not found")
        return
    lines = options.big_file.read_text(encoding="utf-8").count("\n")
    try:
        result = in_process([str(options.big_file)], scratch, options.timeout)
        print(f"  {options.big_file.name} ({lines} lines) in-process: check {result['check']:.2f} s, "
              f"parse {result['bare_parse']:.3f} s: {result['check'] / result['bare_parse']:.1f}x")
        bare_wall, _ = median_timed(bare_parse_command([str(options.big_file)], scratch), 1, options.timeout)
        wall, cpu = run_timed(mlplint_command("--no-cache", str(options.big_file)), options.timeout)
        print(f"  whole CLI: {wall:.2f} s (cpu {cpu:.2f} s), bare parse process {bare_wall:.2f} s: {wall / bare_wall:.1f}x")
    except Timeout:
        print(f"  timed out after {options.timeout:.0f} s")


def case_corpus(options, scratch: Path) -> None:
    corpora = [("all of " + str(options.repos), [options.repos]),
               ("pytorch/examples + nanoGPT", [options.examples, options.repos / "karpathy+nanoGPT"])]
    for title, folders in corpora:
        folders = [f for f in folders if f.is_dir()]
        print(f"\n== corpus: {title} ==")
        files = python_files(folders) if folders else []
        if not files:
            print("  skipped: no .py files found")
            continue
        lines = sum(Path(f).read_text(encoding="utf-8", errors="replace").count("\n") for f in files)
        try:
            bare_wall, bare_cpu = run_timed(bare_parse_command(files, scratch), options.timeout)
            cache = Path(tempfile.mkdtemp(dir=scratch, prefix="cache-"))
            command = mlplint_command("--cache-dir", str(cache), *map(str, folders))
            cold_wall, cold_cpu = run_timed(command, options.timeout, cwd=scratch)
            warm_wall, warm_cpu = median_timed(command, options.repeat, options.timeout, cwd=scratch)
        except Timeout:
            print(f"  timed out after {options.timeout:.0f} s")
            continue
        print(f"  {len(files)} files, {lines} lines; bare parse in one process {bare_wall:.2f} s (cpu {bare_cpu:.2f})")
        print(f"  cold (empty cache, all cores): {cold_wall:.2f} s (cpu {cold_cpu:.2f}) = {cold_wall / bare_wall:.1f}x the bare parse "
              f"(cpu {cold_cpu / bare_cpu:.1f}x; {cold_cpu / cold_wall:.2f} cores busy)")
        print(f"  warm (unchanged files):        {warm_wall:.2f} s (cpu {warm_cpu:.2f}) = {warm_wall / bare_wall:.2f}x the bare parse, "
              f"{warm_wall / cold_wall:.3f}x the cold run (cpu {warm_cpu / cold_cpu:.3f}x)")


def case_startup(options, scratch: Path) -> None:
    print("\n== start-up: one small script ==")
    small = options.small_file
    if not small.is_file():
        small = ROOT / "fixtures" / "examples" / "why_is_it_not_learning.py"
        print(f"  ({options.small_file} not found: using {small.relative_to(ROOT)})")
    lines = small.read_text(encoding="utf-8").count("\n")
    try:
        python_wall, _ = median_timed([sys.executable, "-c", "pass"], options.repeat, options.timeout)
        bare_wall, bare_cpu = median_timed(bare_parse_command([str(small)], scratch), options.repeat, options.timeout)
        cold_wall, cold_cpu = median_timed(mlplint_command("--no-cache", str(small)), options.repeat, options.timeout)
        cache = Path(tempfile.mkdtemp(dir=scratch, prefix="cache-"))
        run_timed(mlplint_command("--cache-dir", str(cache), str(small)), options.timeout)
        warm_wall, warm_cpu = median_timed(mlplint_command("--cache-dir", str(cache), str(small)), options.repeat, options.timeout)
    except Timeout:
        print(f"  timed out after {options.timeout:.0f} s")
        return
    print(f"  {small.name} ({lines} lines); `python -c pass` {python_wall:.3f} s; bare parse process {bare_wall:.3f} s (cpu {bare_cpu:.3f})")
    print(f"  mlplint check --no-cache: {cold_wall:.3f} s (cpu {cold_cpu:.3f}) = {cold_wall / bare_wall:.2f}x (cpu {cold_cpu / bare_cpu:.2f}x)")
    print(f"  mlplint check, cached:    {warm_wall:.3f} s (cpu {warm_cpu:.3f}) = {warm_wall / bare_wall:.2f}x (cpu {warm_cpu / bare_cpu:.2f}x)")


def case_phases(options, scratch: Path) -> None:
    print("\n== phases of an in-process check (pytorch/examples + nanoGPT) ==")
    folders = [f for f in (options.examples, options.repos / "karpathy+nanoGPT") if f.is_dir()]
    files = python_files(folders) if folders else []
    if not files:
        files = [str(p) for p in sorted((ROOT / "fixtures").rglob("*.py"))]
        print("  (corpus not found: using the fixtures)")
    try:
        result = in_process(files, scratch, options.timeout)
    except Timeout:
        print(f"  timed out after {options.timeout:.0f} s")
        return
    bare = result["bare_parse"]
    print(f"  {result['files']} files, {result['lines']} lines: check {result['check']:.2f} s = {result['check'] / bare:.1f}x "
          f"the bare parse ({bare:.2f} s)")
    for phase, seconds in result["phases"].items():
        print(f"    {phase:<9} {seconds:7.2f} s  {seconds / result['check']:6.1%}  {seconds / bare:5.1f}x parse")
    try:
        wall, cpu = run_timed(mlplint_command("--no-cache", *files), options.timeout, cwd=scratch)
    except Timeout:
        print(f"  the CLI timed out after {options.timeout:.0f} s")
        return
    overhead = cpu - result["check"]
    print(f"  the CLI on the same files, no cache: cpu {cpu:.2f} s against {result['check']:.2f} s in one process: "
          f"{overhead:.2f} s ({overhead / cpu:.1%}) of start-up, imports, discovery, workers and pickling; wall {wall:.2f} s")


CASES = {"growth": case_growth, "repeated": case_repeated, "big": case_big, "corpus": case_corpus, "startup": case_startup, "phases": case_phases}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--measure-in-process":
        return _measure_in_process(sys.argv[2])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repos", type=Path, default=Path("/tmp/repos"), help="folder of extracted repositories")
    parser.add_argument("--examples", type=Path, help="pytorch/examples checkout (default: REPOS/pytorch+examples)")
    parser.add_argument("--big-file", type=Path, help="default: REPOS/huggingface+pytorch-image-models/timm/models/vision_transformer.py")
    parser.add_argument("--small-file", type=Path, help="default: EXAMPLES/mnist/main.py")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}")
    parser.add_argument("--sizes", default="500,2000,4000,8000", help="line counts of the growth series")
    parser.add_argument("--timeout", type=float, default=600, help="seconds allowed to each case's process")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each short CLI measurement (median)")
    options = parser.parse_args()
    options.examples = options.examples or options.repos / "pytorch+examples"
    options.big_file = options.big_file or options.repos / "huggingface+pytorch-image-models/timm/models/vision_transformer.py"
    options.small_file = options.small_file or options.examples / "mnist" / "main.py"
    options.sizes = [int(size) for size in options.sizes.split(",") if size.strip()]
    unknown = set(options.cases.split(",")) - set(CASES)
    if unknown:
        parser.error(f"unknown case(s) {', '.join(sorted(unknown))}")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    # As installed from a wheel (pip byte-compiles it): with PYTHONDONTWRITEBYTECODE set and no
    # bytecode, every process would recompile mlplint's modules, while libcst's are compiled.
    for package in ("mlplint", "lint", "rules", "probe"):
        compileall.compile_dir(str(ROOT / package), quiet=1)
    with tempfile.TemporaryDirectory() as scratch:
        for name in options.cases.split(","):
            CASES[name](options, Path(scratch))


if __name__ == "__main__":
    main()
