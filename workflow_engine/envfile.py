"""Where a process's settings come from: the environment, over one env file.

Every `wfe` command, and so every process honcho or a supervisor starts, reads the same file:
``--env-file PATH``, else ``WFE_ENV_FILE``, else ``wfe.env`` in the directory it runs in when
there is one. A variable set in the environment wins over the file. ``config/wfe.env.example``
lists every setting; it is written by :func:`example` from the settings object itself.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic_core import PydanticUndefined

from workflow_engine.errors import ConfigurationError
from workflow_engine.settings import Settings

DEFAULT_ENV_FILE = "wfe.env"
EXAMPLE_HEADER = """\
# Settings of every engine process (WFE_ prefix), one per line: every setting the engine reads,
# with what it is for. Copy to wfe.env where you run `wfe` (or name another file with
# --env-file or WFE_ENV_FILE), set what you need and delete the rest; a variable set in the
# environment wins over this file. Lines starting with # show a setting's default.
# Written by `wfe settings example`: edit the descriptions in workflow_engine/settings.py.
"""


def chosen_file(env_file: str | None) -> Path | None:
    """The env file to read: the one named (which must exist), else ``wfe.env`` if present."""
    if env_file:
        path = Path(env_file)
        if not path.is_file():
            raise ConfigurationError(f"env file {env_file}: no such file")
        return path
    default = Path(DEFAULT_ENV_FILE)
    return default if default.is_file() else None


def load(env_file: str | None = None) -> tuple[Settings, Path | None]:
    """The settings, read from the environment over the chosen env file, and that file."""
    path = chosen_file(env_file)
    if path is None:
        return Settings(), None
    return Settings(_env_file=path, _env_file_encoding="utf-8"), path


def example() -> str:
    """The text of ``config/wfe.env.example``: every setting, grouped, with its description."""
    lines = [EXAMPLE_HEADER.rstrip("\n")]
    for name, field in Settings.model_fields.items():
        extra: dict[str, Any] = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if "section" in extra:
            lines += ["", f"# --- {extra['section']} ---"]
        lines.append("")
        lines += textwrap.wrap(
            field.description or "",
            width=96,
            initial_indent="# ",
            subsequent_indent="# ",
            break_long_words=False,
            break_on_hyphens=False,
        )
        variable = f"WFE_{name.upper()}"
        if "example" in extra:
            lines.append(f"{variable}={extra['example']}")
        elif "commented" in extra:
            lines.append(f"# {variable}={extra['commented']}")
        else:
            lines.append(f"# {variable}={_shown(field.get_default(call_default_factory=True))}")
    return "\n".join(lines) + "\n"


def _shown(value: Any) -> str:
    if value is None or value is PydanticUndefined:
        return ""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, dict):
        import json

        return json.dumps(value)
    return str(value)
