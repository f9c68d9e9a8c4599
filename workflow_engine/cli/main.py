"""Entry point of `wfe`: parses, builds the engine, makes one call; errors become one line."""

from __future__ import annotations

import logging
import os
import re
import sys
import traceback

import click
import pydantic
from pydantic_settings import SettingsError

from workflow_engine import envfile, errors
from workflow_engine.cli.output import EXIT_FAILED, EXIT_USAGE, fail, one_line, print_json
from workflow_engine.outages import BROKER
from workflow_engine.outages import log as outages_log


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="workflow-engine", prog_name="wfe")
@click.option(
    "--env-file",
    envvar="WFE_ENV_FILE",
    metavar="PATH",
    help=f"Read WFE_* settings from this file (default: ./{envfile.DEFAULT_ENV_FILE} when present); "
    "the environment wins over it. Also WFE_ENV_FILE.",
)
@click.pass_context
def cli(ctx: click.Context, env_file: str | None) -> None:
    """Workflow Engine: versioned DAGs of steps, run by Celery workers, durable in the database."""
    settings, source = envfile.load(env_file)
    ctx.obj = settings
    ctx.meta["wfe.env_file"] = source


def _register_commands() -> None:
    from workflow_engine.cli import (
        admin,
        bulk,
        definitions,
        dev,
        errors,
        executions,
        processes,
        schedules,
        settings,
        testing,
        users,
        workers,
    )

    for module in (
        definitions,
        testing,
        executions,
        bulk,
        errors,
        schedules,
        processes,
        workers,
        admin,
        users,
        settings,
        dev,
    ):
        for command in module.COMMANDS:
            cli.add_command(command)


_register_commands()

_EXIT_CODES: list[tuple[type[BaseException], int]] = [
    (errors.InputError, EXIT_USAGE),
    (errors.DefinitionError, EXIT_USAGE),
    (errors.NotFound, EXIT_USAGE),
    (errors.ExpressionError, EXIT_USAGE),
    (errors.AuthError, EXIT_USAGE),
]


def exit_code_for(error: BaseException) -> int:
    for kind, code in _EXIT_CODES:
        if isinstance(error, kind):
            return code
    return EXIT_FAILED


def _describe(error: BaseException) -> str:
    if isinstance(error, SettingsError):
        # pydantic-settings names the field, not the variable: 'error parsing value for field "x" ...'
        field = re.search(r'field "(\w+)"', str(error))
        if field:
            return f"invalid setting WFE_{field.group(1).upper()}: not valid JSON"
        return f"invalid setting: {error}"
    if isinstance(error, pydantic.ValidationError):
        first = error.errors()[0]
        if not first["loc"]:  # settings that go together: the message names them
            return f"invalid settings: {first['msg']}"
        name = "WFE_" + "_".join(str(p) for p in first["loc"]).upper()
        return f"invalid setting {name}: {first['msg']}"
    return str(error) or type(error).__name__


def main(argv: list[str] | None = None) -> None:
    """Run `wfe`; never shows a traceback unless WFE_DEBUG is set."""
    args = sys.argv[1:] if argv is None else argv
    unsent = BROKER.last_error
    one_line_logs = OneLineLogs.install()
    try:
        code = cli.main(args=args, prog_name="wfe", standalone_mode=False)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.exceptions.Abort:
        fail("aborted", EXIT_FAILED)
    except click.UsageError as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        fail(f"{exc.format_message()}{hint}", EXIT_USAGE)
    except click.ClickException as exc:
        fail(exc.format_message(), exc.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except (errors.WorkflowEngineError, pydantic.ValidationError, SettingsError, OSError) as exc:
        _fail_with(exc, exit_code_for(exc), args)
    except Exception as exc:
        _fail_with(exc, EXIT_FAILED, args, prefix="internal error: ")
    finally:
        one_line_logs.remove()
    if BROKER.since is not None and BROKER.last_error is not None and BROKER.last_error is not unsent:
        # the command's change is recorded, but a message it sent did not reach the broker
        if os.environ.get("WFE_DEBUG"):
            traceback.print_exception(BROKER.last_error)
        fail(_describe(BROKER.last_error), EXIT_FAILED)
    sys.exit(code if isinstance(code, int) else 0)


class OneLineLogs(logging.Handler):
    """How a command that sets up no logging of its own (the long-running ones do, and a test
    runner does) shows the engine's warnings: one line each on stderr, without a traceback
    (WFE_DEBUG shows it). An outage's is left out: if the outage outlasts the command, the
    command fails with it."""

    @classmethod
    def install(cls) -> OneLineLogs:
        handler = cls(logging.WARNING)
        logging.getLogger("workflow_engine").addHandler(handler)
        return handler

    def remove(self) -> None:
        logging.getLogger("workflow_engine").removeHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        if logging.getLogger().handlers or record.name == outages_log.name:
            return  # (logging is set up: the record reaches its handlers)
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            message += f": {record.exc_info[1]}"
            if os.environ.get("WFE_DEBUG"):
                traceback.print_exception(record.exc_info[1])
        click.echo(f"wfe: {record.levelname.lower()}: {one_line(message)}", err=True)


def _fail_with(error: BaseException, code: int, args: list[str], prefix: str = "") -> None:
    if os.environ.get("WFE_DEBUG"):
        traceback.print_exc()
    message = prefix + _describe(error)
    if "--json" in args:
        print_json({"error": {"type": type(error).__name__, "message": message}})
    fail(message, code)
