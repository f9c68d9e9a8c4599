"""`wfe test`: run the cases of definitions in process, on a virtual clock."""

from __future__ import annotations

from pathlib import Path

import click

from workflow_engine.agents import load_modules
from workflow_engine.cli.output import EXIT_FAILED, EXIT_USAGE, importable_cwd, json_option, print_json
from workflow_engine.definitions.loader import check_file
from workflow_engine.definitions.model import WorkflowDefinition
from workflow_engine.settings import Settings


@click.command("test")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@json_option
@click.pass_obj
def test(settings: Settings, files: tuple[Path, ...], as_json: bool) -> None:
    """Run the cases (`tests:`) of each definition: one line per case; exit 1 if any fails.

    Agents a case does not mock run as registered by WFE_AGENT_MODULES. The workflows a step
    starts as a child must be among FILES."""
    from workflow_engine.testing.cases import run_cases  # (the worker's modules: only for this command)

    definitions: list[WorkflowDefinition] = []
    for file in files:
        definition, problems = check_file(file)
        if problems or definition is None:
            first = problems[0]
            where = f"{file}: {first.location}" if first.location else str(file)
            more = f" (and {len(problems) - 1} more: wfe validate {file})" if len(problems) > 1 else ""
            click.echo(f"wfe: error: {where}: {first.message}{more}", err=True)
            raise click.exceptions.Exit(EXIT_USAGE)
        definitions.append(definition)
    importable_cwd()
    load_modules(settings.agent_modules)
    results = run_cases(definitions)
    if as_json:
        print_json(
            {
                "passed": sum(r.passed for r in results),
                "failed": sum(not r.passed for r in results),
                "cases": [r.document() for r in results],
            }
        )
    else:
        for result in results:
            click.echo(result.line())
        without = [d.name for d in definitions if not d.tests]
        for name in without:
            click.echo(f"NONE {name}: no cases")
        click.echo(f"{sum(r.passed for r in results)} passed, {sum(not r.passed for r in results)} failed")
    if any(not r.passed for r in results):
        raise click.exceptions.Exit(EXIT_FAILED)


COMMANDS = [test]
