"""`rotor template list|add|apply`: what a scaffolded project holds, and that nothing existing is overwritten
without --force. (Each project's own tests run against a real server in tests/e2e/test_templates.py.)"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from rotor_lite import __version__
from rotor_lite.cli import main
from rotor_lite.cli.templates import available_templates

ROOT = Path(__file__).parents[3]
TEMPLATES = {template.name: template for template in available_templates()}
AGENT_RULES = ("idempotent", "deterministic", "Step ids", "Timeouts are required", "Never log or return secrets")


def rotor(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every template scaffolded once, into a directory named after it."""
    root = tmp_path_factory.mktemp("projects")
    for name in TEMPLATES:
        assert rotor("template", "add", name, "--dir", str(root / name)).exit_code == 0
    return {name: root / name for name in TEMPLATES}


def test_list_names_each_template_with_its_kind() -> None:
    listed = rotor("template", "list", "--json")

    assert listed.exit_code == 0
    assert {(t["name"], t["kind"]) for t in json.loads(listed.output)} == {
        ("outbound-with-approvals", "workflow"), ("multi-step-outbound", "workflow"),
        ("event-driven-enrichment", "workflow"), ("enrichment-dag", "workflow"), ("attribution-rollup", "workflow"),
        ("scheduled-with-approval", "callback"), ("reply-classifier", "callback"),
    }
    assert "outbound-with-approvals  workflow" in rotor("template", "list").output


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_a_project_holds_its_code_readme_config_agent_rules_and_test(name: str, projects: dict[str, Path]) -> None:
    project = projects[name]
    written = {str(path.relative_to(project)) for path in project.rglob("*") if path.is_file()}
    code = {"workflow": {"app.py", "workflows.py"}, "callback": {"handler.py", "callback_app.py", "provision.py"}}

    assert code[TEMPLATES[name].kind] <= written
    assert {"README.md", "AGENTS.md", "CLAUDE.md", "rotor.toml", "requirements.txt", "pyproject.toml",
            "tests/conftest.py", "tests/support.py", f"tests/test_{name.replace('-', '_')}.py"} <= written
    for path in written:
        text = (project / path).read_text()
        assert not re.search(r"\{\{[a-z_]+\}\}", text), path  # every placeholder filled in
        if path.endswith(".py"):
            ast.parse(text, path)
    assert (project / "README.md").read_text().startswith(f"# {name}\n")
    assert f"rotor-lite>={__version__}" in (project / "requirements.txt").read_text()


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_the_readme_shows_the_rotor_toml_the_project_ships(name: str, projects: dict[str, Path]) -> None:
    config = (projects[name] / "rotor.toml").read_text()
    readme = (projects[name] / "README.md").read_text()

    assert tomllib.loads(config)["callbacks"]["allow_private_networks"] is True
    for line in config.splitlines():
        if line and not line.startswith("#"):
            assert line.split("#")[0].strip() in readme, line


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_the_agent_rules_are_general_and_the_templates_own(name: str, projects: dict[str, Path]) -> None:
    agents = (projects[name] / "AGENTS.md").read_text()

    assert agents == (projects[name] / "CLAUDE.md").read_text()
    assert agents.startswith(f"# Rules for coding agents working on {name}\n")
    assert all(rule in agents for rule in AGENT_RULES)
    assert TEMPLATES[name].rules in agents


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_the_project_passes_mypy_strict(name: str, projects: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> None:
    cache = tmp_path_factory.getbasetemp() / "mypy-cache"  # shared: rotor_lite.sdk is analysed once
    env = {**os.environ, "MYPYPATH": f"{ROOT}{os.pathsep}tests"}
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--explicit-package-bases", "--cache-dir", str(cache), "."],
        cwd=projects[name], env=env, capture_output=True, text=True, timeout=110,
    )

    assert done.returncode == 0, done.stdout + done.stderr


def test_existing_files_are_listed_and_nothing_is_written(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("my own readme\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "conftest.py").write_text("# mine\n")

    refused = rotor("template", "add", "reply-classifier", "--dir", str(tmp_path))

    assert refused.exit_code == 1
    assert refused.stderr.splitlines() == [
        f"Nothing written: these files exist in {tmp_path} (--force overwrites them):", "  README.md", "  tests/conftest.py",
    ]
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["README.md", "tests", "tests/conftest.py"]
    assert (tmp_path / "README.md").read_text() == "my own readme\n"


def test_force_overwrites_and_says_which(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("my own readme\n")

    forced = rotor("template", "add", "reply-classifier", "--dir", str(tmp_path), "--force")

    assert forced.exit_code == 0
    assert "  README.md (overwritten)" in forced.output and "  handler.py\n" in forced.output
    assert (tmp_path / "README.md").read_text().startswith(f"# {tmp_path.name}\n")


def test_apply_is_add_and_the_current_directory_is_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    applied = rotor("template", "apply", "enrichment-dag", "--json")

    assert applied.exit_code == 0
    result = json.loads(applied.output)
    assert result["template"] == "enrichment-dag" and result["directory"] == "." and result["overwritten"] == []
    assert "workflows.py" in result["files"] and (tmp_path / "workflows.py").exists()


def test_an_unknown_template_names_the_known_ones(tmp_path: Path) -> None:
    unknown = rotor("template", "add", "nope", "--dir", str(tmp_path))

    assert unknown.exit_code == 2
    assert "no template 'nope'" in unknown.output and "reply-classifier" in unknown.output
    assert "_shared" not in rotor("template", "add", "_shared", "--dir", str(tmp_path)).output.split("are:")[1]
    assert list(tmp_path.iterdir()) == []
