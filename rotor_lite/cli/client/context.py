"""What every client command shares: the global options, the saved config, the SDK client, error exits.

Key: --api-key, else $ROTOR_API_KEY, else "apiKey" in ~/.rotor/config.json.
URL: --api-url, else $ROTOR_API_URL, else "apiUrl" in the config, else http://127.0.0.1:8080.
Workspace (a team key's): --workspace, else $ROTOR_WORKSPACE, else "workspace" in the config.
The config directory is $ROTOR_CONFIG_DIR when set.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec

import click

from rotor_lite.cli.client.output import Output

if TYPE_CHECKING:
    from rotor_lite.sdk import Rotor, RotorAPIError

__all__ = [
    "DEFAULT_API_URL",
    "Session",
    "api_errors",
    "client_command",
    "client_factory",
    "config_path",
    "global_options",
    "load_config",
    "resolve_api_url",
    "resolve_workspace",
    "save_config",
]

P = ParamSpec("P")

DEFAULT_API_URL = "http://127.0.0.1:8080"
ClientFactory = Callable[[str | None, str], "Rotor"]


def default_client_factory(api_key: str | None, api_url: str) -> Rotor:
    """A real SDK client; tests swap `client_factory` for one over an httpx.MockTransport."""
    from rotor_lite.sdk import Rotor  # the SDK loads httpx: only a command that calls the API needs it

    return Rotor(api_key=api_key, base_url=api_url)


client_factory: ClientFactory = default_client_factory


def config_dir() -> Path:
    """$ROTOR_CONFIG_DIR, or ~/.rotor."""
    override = os.environ.get("ROTOR_CONFIG_DIR")
    return Path(override).expanduser() if override else Path.home() / ".rotor"


def config_path() -> Path:
    """The saved-credentials file, `config.json` in the config directory."""
    return config_dir() / "config.json"


def load_config() -> dict[str, Any]:
    """The saved config, or {} when there is none."""
    path = config_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"Cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise click.ClickException(f"{path} does not hold a JSON object")
    return data


def save_config(values: Mapping[str, Any]) -> Path:
    """Write the config atomically, readable by the owner only (file 0600, directory 0700)."""
    directory = config_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".config-", suffix=".json")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(dict(values), file, indent=2)
            file.write("\n")
        os.chmod(temporary, 0o600)
        os.replace(temporary, config_path())
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return config_path()


def resolve_api_key(option: str | None, config: Mapping[str, Any]) -> str | None:
    """--api-key, else $ROTOR_API_KEY, else the saved key."""
    return option or os.environ.get("ROTOR_API_KEY") or config.get("apiKey") or None


def resolve_api_url(option: str | None, config: Mapping[str, Any]) -> str:
    """--api-url, else $ROTOR_API_URL, else the saved URL, else the local default."""
    return option or os.environ.get("ROTOR_API_URL") or config.get("apiUrl") or DEFAULT_API_URL


def resolve_workspace(option: str | None, config: Mapping[str, Any]) -> str | None:
    """--workspace, else $ROTOR_WORKSPACE, else the saved workspace (the one a team key acts in)."""
    return option or os.environ.get("ROTOR_WORKSPACE") or config.get("workspace") or None


@dataclass(frozen=True, slots=True)
class Session:
    """One command's resolved credentials and its output."""

    api_key: str | None
    api_url: str
    output: Output
    workspace: str | None = None

    @classmethod
    def from_options(
        cls, *, api_key: str | None, api_url: str | None, json_output: bool, quiet: bool, workspace: str | None = None
    ) -> Session:
        """Resolve the global options against the environment and the saved config."""
        config = {} if api_key and api_url else load_config()
        return cls(
            api_key=resolve_api_key(api_key, config),
            api_url=resolve_api_url(api_url, config),
            output=Output(json_mode=json_output, quiet=quiet),
            workspace=resolve_workspace(workspace, config),
        )

    def client(self) -> Rotor:
        """An SDK client for this session; fails clearly when no key is configured."""
        if not self.api_key:
            raise click.ClickException("No API key. Run `rotor login`, pass --api-key, or set ROTOR_API_KEY.")
        rotor = client_factory(self.api_key, self.api_url)
        rotor.workspace = self.workspace or rotor.workspace
        return rotor


_GLOBAL_OPTIONS = (
    click.option("--api-key", metavar="KEY", help="API key (else $ROTOR_API_KEY, else the saved key)."),
    click.option("--api-url", metavar="URL", help="API base URL (else $ROTOR_API_URL, else the saved URL)."),
    click.option("--workspace", metavar="WORKSPACE",
                 help="With a team key: the workspace to act in, id or name (else $ROTOR_WORKSPACE, else the saved one)."),
    click.option("--json", "json_output", is_flag=True, help="Print the raw JSON response."),
    click.option("--quiet", is_flag=True, help="Print nothing but errors."),
)


def global_options(func: Callable[P, None]) -> Callable[P, None]:
    """Add --api-key, --api-url, --workspace, --json and --quiet (passed on as keyword arguments)."""
    for option in reversed(_GLOBAL_OPTIONS):
        func = option(func)
    return func


def client_command(func: Callable[Concatenate[Session, P], None]) -> Callable[..., None]:
    """Add the global options; call `func(session, **params)` with API errors turned into exit 1."""

    @functools.wraps(func)
    def wrapper(
        *args: Any, api_key: str | None, api_url: str | None, workspace: str | None, json_output: bool, quiet: bool,
        **kwargs: Any,
    ) -> None:
        session = Session.from_options(
            api_key=api_key, api_url=api_url, json_output=json_output, quiet=quiet, workspace=workspace
        )
        with api_errors(session.output):
            func(session, *args, **kwargs)

    return global_options(wrapper)


@contextmanager
def api_errors(output: Output) -> Iterator[None]:
    """Print SDK errors as `Error [CODE]: message` on stderr and exit 1."""
    from rotor_lite.sdk import RotorAPIError, RotorError

    try:
        yield
    except RotorAPIError as exc:
        output.error(f"Error [{exc.code}]: {exc.message}", detail=_error_detail(exc))
        raise click.exceptions.Exit(1) from exc
    except RotorError as exc:
        output.error(f"Error: {exc}")
        raise click.exceptions.Exit(1) from exc


def _error_detail(exc: RotorAPIError) -> str | None:
    if exc.retry_after is not None:
        return f"Retry after {exc.retry_after:g} s."
    if exc.details:
        return "details: " + json.dumps(exc.details, ensure_ascii=False, default=str)
    return None
