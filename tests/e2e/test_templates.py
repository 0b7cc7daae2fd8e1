"""Every template, scaffolded by `rotor template add` into an empty directory, passes its own tests against a real
`rotor-lite serve`: the project runs as written, with only the server's URL and key given to it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from rotor_lite.cli import main
from rotor_lite.cli.templates import available_templates
from tests.helpers import ServerProcess

TEMPLATES = [template.name for template in available_templates()]
PASSED = re.compile(r"^(\d+) passed in ", re.MULTILINE)


def test_the_seven_templates_are_shipped() -> None:
    assert TEMPLATES == sorted([
        "attribution-rollup", "enrichment-dag", "event-driven-enrichment", "multi-step-outbound",
        "outbound-with-approvals", "reply-classifier", "scheduled-with-approval",
    ])


@pytest.mark.parametrize("name", TEMPLATES)
def test_a_scaffolded_template_passes_its_own_tests(name: str, shared_server: ServerProcess, tmp_path: Path) -> None:
    project = tmp_path / name
    added = CliRunner().invoke(main, ["template", "add", name, "--dir", str(project)])
    assert added.exit_code == 0, added.output

    env = {**os.environ, "ROTOR_API_URL": shared_server.url, "ROTOR_API_KEY": shared_server.api_key}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project, env=env, capture_output=True, text=True, timeout=110,
    )

    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    passed = PASSED.search(report)  # all passed: none skipped, failed or erroring
    assert passed and int(passed.group(1)) >= 1, report
