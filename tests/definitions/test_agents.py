"""The rule for agents a definition names that no one is known to serve, pure: agent and map
steps are checked, nothing known means nothing checked, and the message lists the known names."""

from __future__ import annotations

from workflow_engine.definitions import WorkflowDefinition, load_document
from workflow_engine.definitions.agents import AgentCheck, UnknownAgents, agent_steps, check_agents

DOCUMENT = {
    "name": "flow",
    "version": "1.0.0",
    "steps": [
        {"name": "fetch", "agent": "fetcher"},
        {"name": "each", "type": "map", "items": "steps.fetch.items", "agent": "scorer"},
        {"name": "again", "agent": "fetcher"},
        {"name": "approve", "type": "human"},
        {"name": "child", "type": "workflow", "workflow": "other"},
    ],
}


def flow() -> WorkflowDefinition:
    return load_document(DOCUMENT)


def test_agent_and_map_steps_name_agents_with_their_locations() -> None:
    assert agent_steps(flow()) == {
        "fetcher": ["steps[0] 'fetch'", "steps[2] 'again'"],
        "scorer": ["steps[1] 'each'"],
    }


def test_an_agent_known_to_no_one_is_unknown_with_every_step_naming_it() -> None:
    found = check_agents(flow(), {"scorer", "echo"})
    assert found.checked and found.unknown == {"fetcher": ["steps[0] 'fetch'", "steps[2] 'again'"]}
    assert [(p.location, p.message) for p in found.problems()] == [
        ("steps[0] 'fetch'.agent", "unknown agent 'fetcher' (known: echo, scorer)"),
        ("steps[2] 'again'.agent", "unknown agent 'fetcher' (known: echo, scorer)"),
    ]
    assert found.line() == (
        "unknown agent 'fetcher' (steps[0] 'fetch', steps[2] 'again'); known agents: echo, scorer"
    )


def test_a_map_step_agent_is_checked_too() -> None:
    assert check_agents(flow(), {"fetcher"}).unknown == {"scorer": ["steps[1] 'each'"]}


def test_every_agent_known_is_nothing_unknown() -> None:
    found = check_agents(flow(), ["fetcher", "scorer"])
    assert found.checked and found.unknown == {} and found.problems() == []


def test_nothing_known_means_nothing_checked_not_everything_unknown() -> None:
    for known in (None, set()):
        found = check_agents(flow(), known)
        assert found == AgentCheck(None) and not found.checked and found.unknown == {}


def test_the_refusal_is_a_definition_error_with_a_problem_per_step() -> None:
    refused = UnknownAgents(check_agents(flow(), {"echo"}), "flow 1.0.0")
    assert [p.location for p in refused.problems] == [
        "steps[0] 'fetch'.agent",
        "steps[1] 'each'.agent",
        "steps[2] 'again'.agent",
    ]
    assert str(refused).startswith("invalid workflow definition flow 1.0.0: steps[0] 'fetch'.agent")


def test_a_task_step_names_its_celery_task_which_workers_must_load() -> None:
    document = {
        "name": "shop",
        "steps": [{"name": "fetch", "type": "task", "task": "shop.fetch"}, {"name": "f", "agent": "fetcher"}],
    }
    definition = load_document(document)
    assert agent_steps(definition) == {"task:shop.fetch": ["steps[0] 'fetch'"], "fetcher": ["steps[1] 'f'"]}
    found = check_agents(definition, {"fetcher", "task:shop.other"})
    assert [(p.location, p.message) for p in found.problems()] == [
        (
            "steps[0] 'fetch'.task",
            "unknown Celery task 'shop.fetch': no worker loads it (known: fetcher, task:shop.other)",
        )
    ]
    assert not check_agents(definition, {"fetcher", "task:shop.fetch"}).unknown
