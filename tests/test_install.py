"""Packaging: ``pip install .`` (not editable) into a fresh venv works from any directory.

The wheel is built from a copy of the source tree with this interpreter's setuptools (no network, no
build isolation), installed with ``--no-deps --no-index`` into a venv made ``--without-pip`` (so it
sees nothing of this venv: no editable archc, no torch). archc's runtime dependencies (pydantic,
PyYAML, jinja2 and theirs, found from the installed wheel's metadata) are lent from this venv by
symlinking exactly those distributions into a folder on the fresh venv's path. Costs a few seconds.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from archc.backends import get_backend, list_backends
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from archc.pipeline import compile_spec

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["pyproject.toml", "README.md", "archc", "backends", "specs"]


def run(*argv, cwd=None, env=None) -> subprocess.CompletedProcess:
    r = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{argv}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r


def runtime_closure(site: Path) -> list[importlib.metadata.Distribution]:
    """The distributions archc (as installed in ``site``) needs at run time, resolved in this venv."""
    (archc,) = [d for d in importlib.metadata.distributions(path=[str(site)]) if d.metadata["Name"] == "archc"]
    todo = [Requirement(r) for r in archc.requires or []]
    seen: dict[str, importlib.metadata.Distribution] = {}
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # an extra (torch, keras, test) or another platform's dependency
        name = canonicalize_name(req.name)
        if name not in seen:
            seen[name] = importlib.metadata.distribution(req.name)
            todo += [Requirement(r) for r in seen[name].requires or []]
    return list(seen.values())


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """(python, archc script, site-packages) of a fresh venv holding a non-editable install of this tree."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    wheels = tmp / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    run(*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-w", wheels, src)
    (wheel,) = wheels.glob("archc-*.whl")
    venv = tmp / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    run(*pip, "--python", python, "install", "-q", "--no-deps", "--no-index", wheel)
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    deps = tmp / "deps"
    deps.mkdir()
    for dist in runtime_closure(site):
        base = Path(dist.locate_file(""))
        for top in {Path(f).parts[0] for f in dist.files or [] if not str(f).startswith("..")}:
            if top != "__pycache__" and (base / top).exists() and not (deps / top).exists():
                (deps / top).symlink_to(base / top)
        for f in dist.files or []:  # the executables a dependency installs (ruff's binary) go where pip puts them
            path = Path(dist.locate_file(f)).resolve()
            if str(f).startswith("..") and path.parent.name == "bin" and not (venv / "bin" / path.name).exists():
                (venv / "bin" / path.name).symlink_to(path)
    (site / "archc_test_runtime_deps.pth").write_text(f"{deps}\n")
    return python, venv / "bin" / "archc", site, wheel


def clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONNOUSERSITE"] = "1"
    env["ARCHC_CACHE_DIR"] = ""  # `archc list` computes its table (no cache in ~/.cache/archc)
    return env


def test_wheel_installs_no_top_level_backends(fresh):
    python, _, site, wheel = fresh
    import zipfile

    tops = {n.split("/")[0] for n in zipfile.ZipFile(wheel).namelist()}
    assert tops == {"archc", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}, tops
    assert not (site / "backends").exists()
    assert (site / "archc" / "backends" / "torch" / "templates").is_dir()
    assert sorted(p.name for p in (site / "archc" / "stdlib").glob("*.yaml")) == sorted(
        p.name for p in (ROOT / "archc" / "stdlib").glob("*.yaml")
    )
    # the zoo: specs/ installs as archc/zoo/, every file, nothing else (no Python: it is data)
    assert sorted(p.name for p in (site / "archc" / "zoo").iterdir()) == sorted(
        p.name for p in (ROOT / "specs").glob("*.yaml")
    )


def test_non_editable_install_runs_from_another_directory(fresh, tmp_path, monkeypatch):
    python, archc_script, site, _ = fresh
    env = clean_env()
    # the user's own top-level package named `backends`, in the directory archc runs from
    (tmp_path / "backends").mkdir()
    (tmp_path / "backends" / "__init__.py").write_text("raise ImportError('the user s own backends package')\n")
    probe = (
        "import importlib.util, json, archc, archc.backends as b, archc.catalog as c; "
        "print(json.dumps({'archc': archc.__file__, 'backends': b.__file__, 'list': b.list_backends(), "
        "'zoo': str(c.zoo_dir()), 'torch': importlib.util.find_spec('torch') is not None}))"
    )
    seen = json.loads(run(python, "-I", "-c", probe, cwd=tmp_path, env=env).stdout)
    assert Path(seen["archc"]).is_relative_to(site) and Path(seen["backends"]).is_relative_to(site), seen
    assert Path(seen["zoo"]) == site / "archc" / "zoo", seen
    assert seen["list"] == list_backends() and not seen["torch"], seen  # this venv (torch, editable archc) unseen
    spec = ROOT / "specs" / "densenet169.yaml"
    # the console script, and `python -m archc` with the user's `backends` first on sys.path
    for cmd, backend in (([archc_script], "torch"), ([python, "-m", "archc"], "keras")):
        out = tmp_path / f"x_{backend}.py"
        r = run(*cmd, "build", spec, "--backend", backend, "-o", out, cwd=tmp_path, env=env)
        assert r.stdout.strip() == f"wrote {out}"
        monkeypatch.chdir(tmp_path)  # the header names the spec relative to the working directory
        assert out.read_text(encoding="utf-8") == get_backend(backend).emit(compile_spec(str(spec)))
    # every zoo spec by name, from the installed zoo (those that extend another too)
    names = sorted(p.stem for p in (ROOT / "specs").glob("*.yaml"))
    r = run(archc_script, "check", *names, cwd=tmp_path, env=env)
    assert r.stdout.splitlines() == [line for line in r.stdout.splitlines() if line.split(": ok (")[0] in names]
    assert r.stdout.count(": ok (") == len(names)
    r = subprocess.run([archc_script, "check", tmp_path / "missing.yaml"], cwd=tmp_path, env=env, capture_output=True)
    assert r.returncode == 2 and b"Traceback" not in r.stderr, r.stderr


def test_pip_show_names_the_fresh_install(fresh, tmp_path):
    python, _, site, _ = fresh
    r = run(
        sys.executable,
        "-m",
        "pip",
        "--disable-pip-version-check",
        "--python",
        python,
        "show",
        "archc",
        cwd=tmp_path,
        env=clean_env(),
    )
    fields = dict(line.split(": ", 1) for line in r.stdout.splitlines() if ": " in line)
    assert fields["Name"] == "archc" and Path(fields["Location"]) == site, r.stdout
    assert "Editable project location" not in fields, r.stdout
    assert set(fields["Requires"].split(", ")) == {"pydantic", "PyYAML", "jinja2", "ruff"}, r.stdout


def test_extras_are_ranges_and_ci_pins_them():
    """Extras install next to any torch / Keras 3 a user has; CI's exact versions live in constraints.txt."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = Version(version)
    assert pins["torch"] == Version("2.13.0") and pins["tensorflow-cpu"] == Version("2.21.0")
    assert [str(Requirement(r)) for r in extras["keras"]] == ["keras>=3"]
    for extra, reqs in extras.items():
        for r in map(Requirement, reqs):
            assert all(s.operator not in ("==", "===", "~=") for s in r.specifier), f"[{extra}] pins {r}"
            if extra == "test":  # every test requirement pinned, to a version its range admits
                assert r.specifier.contains(pins[canonicalize_name(r.name)]), (r, pins.get(r.name))
    for user in ("torch==2.12.0", "torch==2.14.0", "torch==2.13.0+cu128"):  # CPU, CUDA, older and newer
        assert Requirement(extras["torch"][0]).specifier.contains(Version(user.split("==")[1])), user
    lines = (ROOT / "README.md").read_text().splitlines()
    (command,) = [line for line in lines if line.startswith("python3 -m venv") and "pytest" in line]
    assert "-c constraints.txt" in command.split("&&")[1], command


def test_zoo_by_name_from_a_non_editable_install(fresh, tmp_path, monkeypatch):
    """Issue 22's check, from a folder outside the repository: `archc list`, `archc build resnet50`."""
    python, archc_script, site, _ = fresh
    env = clean_env()
    r = run(archc_script, "list", cwd=tmp_path, env=env)
    rows = {line.split()[0]: line.split() for line in r.stdout.splitlines()[1:-1]}
    assert list(rows) == sorted(p.stem for p in (ROOT / "specs").glob("*.yaml")), r.stdout
    assert rows["resnet50"][1:4] == ["224x224x3", "25,557,032", "53,120"], rows["resnet50"]
    r = run(archc_script, "build", "resnet50", "--backend", "torch", cwd=tmp_path, env=env)
    assert r.stdout.strip() == "wrote generated/torch/resnet50.py"
    monkeypatch.chdir(tmp_path)  # the header names the spec relative to the working directory: its file name here
    expected = get_backend("torch").emit(compile_spec(str(ROOT / "specs" / "resnet50.yaml")))
    assert (tmp_path / "generated" / "torch" / "resnet50.py").read_text(encoding="utf-8") == expected
    r = subprocess.run([archc_script, "build", "resnet5O", "-b", "torch"], cwd=tmp_path, env=env, capture_output=True)
    assert r.returncode == 2 and r.stderr.startswith(b"'resnet5O' is neither a spec file nor a zoo spec"), r.stderr


@pytest.mark.parametrize(
    "backend, call, shape",
    [
        ("torch", "archc.create_model('resnet50', backend='torch', classes=10)", (1, 10)),
        ("keras", "archc.create_model('mobilenet_v2', backend='keras', classes=7)", (1, 7)),
    ],
)
def test_create_model_from_a_non_editable_install(fresh, tmp_path, backend, call, shape):
    """archc.create_model in the fresh venv, from outside the repository; the framework (and only it) is lent
    from this venv, appended to sys.path after the fresh install's own site-packages."""
    python, _, site, _ = fresh
    import importlib.util
    import sysconfig

    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    lent = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    forward = {
        "torch": "import torch; model.eval(); y = model(torch.zeros(1, 3, 224, 224))",
        "keras": "import numpy as np; y = model(np.zeros((1, 224, 224, 3), 'float32'))",
    }[backend]
    probe = (
        f"import json, os, sys; sys.path += {lent!r}\n"
        f"import archc\nmodel = {call}\n{forward}\n"
        "print(json.dumps({'archc': archc.__file__, 'shape': list(y.shape), 'files': os.listdir('.')}))\n"
    )
    r = run(python, "-I", "-c", probe, cwd=tmp_path, env=clean_env())
    seen = json.loads(r.stdout.splitlines()[-1])
    assert Path(seen["archc"]).is_relative_to(site), seen
    assert tuple(seen["shape"]) == shape and seen["files"] == [], seen
