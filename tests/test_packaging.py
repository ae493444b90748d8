"""The configs ship inside the package (d2_boxunc.model_zoo) and are found by name from anywhere;
a wheel installs them.  The wheel tests are marked slow: a pure-Python wheel always (seconds),
the wheel with the compiled ops when the checkout's compiled objects can be reused."""

import glob
import os
import subprocess
import sys
import sysconfig
import textwrap

import pytest

from d2_boxunc import model_zoo
from d2_boxunc.config.cli import ConfigError, load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KL = "KLLoss/kl_faster_rcnn_R_50_FPN_2x.py"


def _zoo_files() -> list[str]:
    """Every config and sweep file in the source tree's zoo, relative to it."""
    found = glob.glob(os.path.join(model_zoo.CONFIG_DIR, "**", "*.*"), recursive=True)
    return sorted(
        os.path.relpath(p, model_zoo.CONFIG_DIR)
        for p in found
        if p.endswith((".py", ".yaml")) and "__pycache__" not in p
    )


def test_checkout_configs_folder_is_the_zoo():
    assert os.path.samefile(os.path.join(ROOT, "configs"), model_zoo.CONFIG_DIR)


def test_zoo_finds_every_config_by_name():
    names = model_zoo.list_configs()
    assert KL in names and "Baselines/faster_rcnn_R_50_FPN_1x.py" in names
    assert not [n for n in names if n.startswith("common/")]
    for name in names:
        assert os.path.isfile(model_zoo.get_config_file(name))
    # the checkout's path names the same file (the study plan and sweep files write it so)
    assert model_zoo.get_config_file(f"configs/{KL}") == model_zoo.get_config_file(KL)
    assert model_zoo.get_config_file("sweeps/kl_sigma_t.yaml").endswith(".yaml")
    cfg = model_zoo.get_config(KL)
    assert cfg.model.roi_heads.box_predictor.sigma_t == 0.02
    with pytest.raises(RuntimeError, match="not available in d2_boxunc's model zoo"):
        model_zoo.get_config_file("KLLoss/nope.py")
    with pytest.raises(RuntimeError):
        model_zoo.get_config_file("../model_zoo/__init__.py")
    with pytest.raises(ValueError, match="not a LazyConfig"):
        model_zoo.get_config("sweeps/kl_sigma_t.yaml")


def test_command_line_configs_accept_zoo_names_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(KL, ["train.max_iter=3"], synthetic=True)
    assert cfg.train.max_iter == 3 and cfg.model.roi_heads.box_predictor.sigma_t == 0.02
    with pytest.raises(ConfigError, match="config file not found: KLLoss/nope.py .*model-zoo"):
        load_config("KLLoss/nope.py")


def test_package_data_lists_every_zoo_file(tmp_path):
    """setup.py's package_data takes every config: build_py (no compiling) copies them all."""
    proc = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    built = os.path.join(tmp_path, "d2_boxunc", "model_zoo", "configs")
    shipped = sorted(
        os.path.relpath(p, built)
        for p in glob.glob(os.path.join(built, "**", "*.*"), recursive=True)
    )
    assert shipped == _zoo_files()


def _objects_dir() -> str:
    """Where a plain ``pip wheel .`` of the checkout keeps the compiled objects."""
    temp = f"temp.{sysconfig.get_platform()}-{sys.implementation.cache_tag}"
    return os.path.join(ROOT, "build", temp)


def _build_wheel(out_dir, compiled: bool) -> str:
    """``pip wheel`` of the checkout, built under ``out_dir`` (no stale file of an earlier build in
    the checkout's ``build/lib*`` can enter it).  ``compiled``: with the ops, compiling into the
    checkout's objects folder, so only objects whose sources changed are compiled again; else a
    pure-Python wheel (``D2_BOXUNC_NO_EXT=1``)."""
    extra = out_dir / "setup_extra.cfg"
    extra.write_text(
        textwrap.dedent(
            f"""\
            [build]
            build_base = {out_dir / "build"}
            [build_ext]
            build_temp = {_objects_dir()}
            [egg_info]
            egg_base = {out_dir}
            """
        )
    )
    env = {**os.environ, "DIST_EXTRA_CONFIG": str(extra)}
    env.setdefault("MAX_JOBS", "1")
    if not compiled:
        env["D2_BOXUNC_NO_EXT"] = "1"
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    cmd += ["--no-cache-dir", "-q", "-w", str(out_dir / "dist"), ROOT]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (wheel,) = glob.glob(str(out_dir / "dist" / "d2_boxunc-*.whl"))
    return wheel


INSTALLED_CHECK = """
import sys
import d2_boxunc
from d2_boxunc import model_zoo
from d2_boxunc._extension import has_ops
from d2_boxunc.config.cli import load_config
from d2_boxunc.demo import METHODS
from detectron2.config import instantiate

assert d2_boxunc.__file__.startswith(sys.prefix), d2_boxunc.__file__  # the wheel, not the checkout
assert has_ops() == (sys.argv[1] == "compiled"), has_ops()
cfg = model_zoo.get_config("KLLoss/kl_faster_rcnn_R_50_FPN_2x.py")
assert "model" in cfg and len(model_zoo.list_configs()) > 40
# the demo's first step: its KL method's config, loaded with --synthetic, then built
cfg = load_config(METHODS["kl"].config, ["train.max_iter=1"], synthetic=True)
model = instantiate(cfg.model)
print("OK", type(model).__name__, model_zoo.CONFIG_DIR)
"""


def _install_and_check(tmp_path, wheel: str, compiled: bool) -> None:
    """Install ``wheel`` into a fresh venv and run :data:`INSTALLED_CHECK` outside the checkout."""
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
        check=True,
    )
    python = str(venv / "bin" / "python")
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # --system-site-packages reaches the base interpreter's site only: torch, detectron2 & co.
    # come from the interpreter running the tests (no downloads); a plain path line does not run
    # that site's .pth files, so an editable d2_boxunc installed there stays out
    with open(os.path.join(site, "_test_reuse_site.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    cmd = [sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps"]
    cmd += ["--no-index", "--ignore-installed", "--no-cache-dir", wheel]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    kind = "compiled" if compiled else "pure"
    proc = subprocess.run(
        [python, "-c", INSTALLED_CHECK, kind],
        cwd=outside,
        env={**env, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.split()[:2] == ["OK", "BoxUncRCNN"], proc.stdout
    assert proc.stdout.split()[2].startswith(str(venv))


@pytest.mark.slow
def test_pure_python_wheel_ships_the_configs(tmp_path):
    """Seconds on any machine: the wheel without the compiled ops (``D2_BOXUNC_NO_EXT=1``)."""
    _install_and_check(tmp_path, _build_wheel(tmp_path, compiled=False), compiled=False)


@pytest.mark.slow
@pytest.mark.skipif(
    not glob.glob(os.path.join(_objects_dir(), "**", "*.o"), recursive=True),
    reason="no compiled objects to reuse in build/temp.* (a first build compiles for minutes); "
    "run `MAX_JOBS=1 pip wheel --no-deps --no-build-isolation -w dist .` once to enable",
)
def test_wheel_ships_the_configs_and_the_compiled_ops(tmp_path):
    """The real wheel, reusing the checkout's compiled objects (about 30 s)."""
    _install_and_check(tmp_path, _build_wheel(tmp_path, compiled=True), compiled=True)
