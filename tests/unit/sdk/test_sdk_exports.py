"""The SDK's public names, and its independence from the server side of rotor_lite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import rotor_lite.sdk as sdk

EXPECTED = {
    "Rotor",
    "AsyncRotor",
    "verify_rotor_signature",
    "sign_rotor_payload",
    "parse_idempotency_key",
    "RotorError",
    "RotorAPIError",
    "RotorIdempotencyConflict",
    "RotorNotFound",
    "RotorQuotaExceeded",
    "RotorRateLimited",
    "RotorUnauthorized",
    "RotorValidationError",
    "RotorConflict",
    "RotorSignatureError",
    "Webhook",
    "create_function",
    "serve_workflow",
    "WorkflowError",
    "StepError",
    "WorkflowFailedError",
    "WorkflowTimeoutError",
    "WorkflowCancelledError",
    "SignalTimeoutError",
    "NonRetriableError",
    "RotorWorker",
}


def test_all_lists_exactly_the_public_names() -> None:
    assert set(sdk.__all__) == EXPECTED
    for name in sdk.__all__:
        assert getattr(sdk, name).__doc__, f"{name} has no docstring"


def test_api_errors_share_the_root() -> None:
    for name in EXPECTED - {"Rotor", "AsyncRotor", "RotorError", "RotorAPIError", "RotorSignatureError", "RotorWorker"}:
        if name.startswith("Rotor"):
            assert issubclass(getattr(sdk, name), sdk.RotorAPIError), name
        elif name.endswith("Error") and name != "NonRetriableError":
            assert issubclass(getattr(sdk, name), sdk.WorkflowError), name
    assert issubclass(sdk.RotorAPIError, sdk.RotorError)
    assert issubclass(sdk.WorkflowError, sdk.RotorError)


def test_sdk_imports_nothing_server_side() -> None:
    code = (
        "import sys, rotor_lite.sdk\n"
        "mods = sorted(m for m in sys.modules if m.startswith('rotor_lite') and not m.startswith('rotor_lite.sdk'))\n"
        "assert mods == ['rotor_lite'], mods\n"
    )
    repo_root = Path(sdk.__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=repo_root)
