"""pyproject.toml, environment.yml, constraints.txt, Makefile and .ci/run agree with each other."""
import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]


def pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_installs_the_package_with_existing_extras():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    editable = [line for line in pip_section if line.startswith("-e .")]
    assert editable, "environment.yml must install the package itself (-e .[...])"
    extras = re.search(r"\[(.*)\]", editable[0]).group(1).split(",")
    declared = pyproject()["project"]["optional-dependencies"]
    assert set(extras) == set(declared), f"extras {extras} vs pyproject {sorted(declared)}"
    assert any(line == "-c constraints.txt" for line in pip_section)
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    minimum = pyproject()["project"]["requires-python"].removeprefix(">=")
    version = tuple(int(x) for x in python.split("=")[1].split("."))
    assert version >= tuple(int(x) for x in minimum.split("."))


def test_constraints_pin_packages_the_project_depends_on():
    deps = {re.split(r"[<>=!\[ ]", d)[0].lower() for d in pyproject()["project"]["dependencies"]}
    pins = [line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines()
            if line and not line.startswith("#")]
    assert pins and all(name.lower() in deps for name, _ in pins)


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make figures" in readme
    assert re.search(r"^make test$", ci, re.MULTILINE)


def test_console_script_points_at_the_cli():
    assert pyproject()["project"]["scripts"]["yolov9lite"] == "yolov9lite.cli:main"


def test_makefile_installs_every_extra():
    """The test install (Makefile) has every extra, so e.g. the export tests' onnxruntime is
    there."""
    makefile = (ROOT / "Makefile").read_text()
    installs = re.findall(r'-e "\.\[(.*?)\]"', makefile)
    assert installs, "the Makefile must install the package itself (-e \".[...]\")"
    declared = pyproject()["project"]["optional-dependencies"]
    assert all(set(extras.split(",")) == set(declared) for extras in installs)


def test_make_test_runs_ruff_before_the_tests():
    """``make test`` (what CI runs) lints the package, tests and benchmarks before pytest."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    lines = [line.strip() for line in recipe.splitlines()[1:]]
    lint = "ruff check yolov9lite tests benchmarks"
    ruff = next(i for i, line in enumerate(lines) if lint in line)
    pytest_ = next(i for i, line in enumerate(lines) if "pytest" in line)
    assert ruff < pytest_
