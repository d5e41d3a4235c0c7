"""What a cold start costs: the deployment zip's size and the CPU of
`import app` in a fresh process, for both Lambda architectures.

    .venv/bin/python -m bench.coldstart [--stage prod] [--runs 5] [--project-dir DIR]

Each zip is built as a deploy builds it (infra/package.py's `build_zip`;
a project whose package.py has none is built with its `build`, one zip as
`chalice package` makes it, the same for both architectures). It is then
unzipped into a read-only folder (as /var/task is: nothing can write
bytecode there) and imported by a clean interpreter: a venv holding only
Python 3.11 and what the Lambda runtime ships (boto3 and its dependencies,
copied from this environment and compiled), started with -I -B, with the
stage's variables. The CPU is time.process_time() around `import app`,
median of --runs fresh processes; one more run with -X importtime lists
the modules that cost most.

arm64's import cannot run here: its zip is sized and checked for compiled
(architecture-bound) files; with none, it holds the same Python files as
x86_64's, whose import figure stands for both.

Also printed: what the first use of storage adds (pynamodb and botocore,
imported by the first handler or action that needs a table), and a bare
interpreter's and the load average, to judge how busy the machine was.
"""
import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from local.stage import stage_environment  # noqa: E402

ARCHITECTURES = ("x86_64", "arm64")
RUNTIME = ROOT / "build" / "coldstart" / "runtime"
# What the Lambda Python runtime provides besides the standard library.
RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")
HEAVY = ("pynamodb", "botocore", "boto3", "jsonschema", "http.client", "ssl")
COMPILED = (".so", ".pyd", ".dylib")
PROBE = """
import json, sys, time
started = time.process_time()  # the interpreter's own start, so far
sys.path.insert(0, sys.argv[1])
{statement}
cpu_ms = (time.process_time() - started) * 1000
print(json.dumps({{"cpu_ms": cpu_ms, "startup_ms": started * 1000, "heavy": sorted(
    name for name in {heavy!r} if name in sys.modules)}}))
"""


def load_packager(project_dir):
    """The project's own infra/package.py (it imports that project's chalicelib)."""
    spec = importlib.util.spec_from_file_location(
        "coldstart_package", Path(project_dir) / "infra" / "package.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_zips(project_dir, stage, out_dir):
    """{arch: zip path}, and how they were built."""
    packager = load_packager(project_dir)
    if hasattr(packager, "build_zip"):
        return {arch: packager.build_zip(stage, arch, out_dir / arch)
                for arch in ARCHITECTURES}, "infra.package.build_zip"
    # No build for an architecture: Chalice's one zip stands for both.
    zip_path = packager.build(stage, out_dir / "any")[0]
    return ({arch: zip_path for arch in ARCHITECTURES},
            "infra.package.build (no build_zip there: one zip, as chalice package makes it)")


def runtime_python():
    """A venv with only the standard library and the runtime's modules,
    made once under build/coldstart/."""
    python = RUNTIME / "bin" / "python"
    if python.exists():
        return python
    shutil.rmtree(RUNTIME, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(RUNTIME)], check=True)
    site = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True).stdout.strip())
    for name in RUNTIME_MODULES:
        origin = Path(importlib.util.find_spec(name).origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        if source.is_dir():
            shutil.copytree(source, site / source.name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, site / source.name)
    # The runtime's own modules come compiled.
    subprocess.run([str(python), "-m", "compileall", "-q", str(site)], check=True,
                   stdout=subprocess.DEVNULL)
    return python


def unpack_read_only(zip_path, into, python=None):
    """As /var/task: read-only. With `python`, its bytecode is compiled first."""
    zipfile.ZipFile(zip_path).extractall(into)
    if python is not None:
        subprocess.run([str(python), "-m", "compileall", "-q", str(into)], check=True,
                       stdout=subprocess.DEVNULL)
    for path in [into, *into.rglob("*")]:
        path.chmod(path.stat().st_mode & 0o555)


def make_writable(folder):
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)


def probe(python, task, statement, environment, *flags):
    script = PROBE.format(statement=statement, heavy=HEAVY)
    result = subprocess.run([str(python), "-I", "-B", *flags, "-c", script, str(task)],
                            env=environment, cwd=task, capture_output=True, text=True,
                            timeout=120)
    if result.returncode != 0:
        raise RuntimeError(result.stderr)
    return json.loads(result.stdout.splitlines()[-1]), result.stderr


def median_of(runs, python, task, statement, environment):
    """Median CPU ms of `statement`, the interpreter's start, and what it loaded."""
    results = [probe(python, task, statement, environment)[0] for _ in range(runs)]
    return (statistics.median(result["cpu_ms"] for result in results),
            statistics.median(result["startup_ms"] for result in results),
            results[-1]["heavy"])


def costliest(python, task, environment, count=12):
    """(self ms, cumulative ms, module) of the modules `import app` spends most on."""
    _, trace = probe(python, task, "import app", environment, "-X", "importtime")
    rows = []
    for line in trace.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = line[len("import time:"):].split("|")
        rows.append((int(own) / 1000, int(cumulative) / 1000, name.strip()))
    return sorted(rows, reverse=True)[:count]


def compiled_files(zip_path):
    return [name for name in zipfile.ZipFile(zip_path).namelist() if name.endswith(COMPILED)]


def bytecode_files(zip_path):
    return sum(name.endswith(".pyc") for name in zipfile.ZipFile(zip_path).namelist())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", default="prod")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--project-dir", default=str(ROOT),
                        help="the checkout to build (default: this one)")
    args = parser.parse_args(argv)
    environment = {"PATH": os.environ.get("PATH", "/usr/bin"),
                   "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
                   **stage_environment(args.stage)}
    python = runtime_python()
    with tempfile.TemporaryDirectory(prefix="coldstart-") as scratch:
        scratch = Path(scratch)
        zips, how = build_zips(args.project_dir, args.stage, scratch / "zips")
        task = scratch / "task"
        unpack_read_only(zips["x86_64"], task)
        # A zip without bytecode compiles every module at each cold start;
        # what it costs with bytecode is measured too.
        compiled = None
        if not bytecode_files(zips["x86_64"]):
            compiled = scratch / "task-with-bytecode"
            unpack_read_only(zips["x86_64"], compiled, python)
        try:
            imported, startup, heavy = median_of(args.runs, python, task, "import app",
                                                 environment)
            fast = compiled or task
            with_bytecode = median_of(args.runs, python, compiled, "import app",
                                      environment)[0] if compiled else None
            with_storage = median_of(args.runs, python, fast,
                                     "import app\nimport chalicelib.storage.dynamodb",
                                     environment)[0]
            top = costliest(python, fast, environment)
        finally:
            for folder in (task, compiled):
                if folder is not None:
                    make_writable(folder)
        print(f"project {Path(args.project_dir).resolve()}, stage {args.stage}, "
              f"built by {how}; load average {os.getloadavg()[0]:.2f}")
        print(f"{'arch':8} {'zip MB':>7} {'.pyc':>5} {'compiled':>8}  "
              f"import app CPU ms (median of {args.runs})")
        for arch in ARCHITECTURES:
            size = zips[arch].stat().st_size / 1e6
            native = compiled_files(zips[arch])
            figure = f"{imported:.0f}" if arch == "x86_64" else \
                f"{imported:.0f} (x86_64's: the same Python files)" if not native else \
                "not measurable here (architecture-bound files)"
            print(f"{arch:8} {size:7.2f} {bytecode_files(zips[arch]):5} {len(native):8}  {figure}")
        if with_bytecode is not None:
            print(f"x86_64 with the bytecode compiled in: import app {with_bytecode:.0f} ms")
        fastest = imported if with_bytecode is None else with_bytecode
        print(f"first use of storage adds {with_storage - fastest:.0f} ms "
              f"(import app + chalicelib.storage.dynamodb: {with_storage:.0f} ms)")
        print(f"the interpreter's own start: {startup:.1f} ms; heavy modules loaded by "
              f"import app: {', '.join(heavy) or 'none'}")
        print("costliest imports (-X importtime, one run, wall ms: self, cumulative):")
        for own, cumulative, name in top:
            print(f"  {own:7.1f} {cumulative:7.1f}  {name}")


if __name__ == "__main__":
    main()
