"""POST /executions/{id}/signals/{name}: kept or taken, and every refusal with nothing changed."""

from __future__ import annotations

from tests.api.conftest import Api

PAY = {
    "name": "pay",
    "version": "1.0.0",
    "steps": [
        {"name": "invoice", "agent": "echo"},
        {
            "name": "paid",
            "type": "wait",
            "signal": "payment",
            "input_schema": {
                "type": "object",
                "required": ["amount"],
                "properties": {"amount": {"type": "number"}},
            },
            "timeout": 86400,
        },
        {"name": "ship", "agent": "echo"},
    ],
}


def test_a_signal_sent_early_is_kept_then_taken_and_recorded_with_its_sender(api: Api) -> None:
    api.register(PAY)
    api.harness.agent("echo")
    execution = api.start("pay")
    sent = api.post(f"/executions/{execution}/signals/payment", json={"data": {"amount": 10}})
    assert sent.status_code == 200, sent.text
    assert sent.json()["status"] in ("initialized", "running")
    api.harness.work()
    detail = api.get(f"/executions/{execution}?include_events=true").json()
    assert detail["status"] == "completed"
    [paid] = api.get(f"/executions/{execution}/logs", params={"step_name": "paid"}).json()
    assert paid["output_data"] == {"amount": 10} and paid["completed_by"] == "alice"
    kept = [e for e in detail["events"] if "signal 'payment' from alice kept" in (e["reason"] or "")]
    assert [e["actor"] for e in kept] == ["alice"]


def test_a_signal_to_a_waiting_step_moves_the_execution_on(api: Api) -> None:
    api.register(PAY)
    api.harness.agent("echo")
    execution = api.start("pay")
    api.harness.deliver_one()  # invoice ran; paid waits
    assert api.get(f"/executions/{execution}").json()["status"] == "waiting"
    sent = api.post(f"/executions/{execution}/signals/payment", json={"data": {"amount": 2.5}})
    assert sent.status_code == 200 and sent.json()["status"] == "running"
    api.harness.work()
    assert api.get(f"/executions/{execution}").json()["status"] == "completed"


def test_refused_signals_answer_4xx_and_change_nothing(api: Api) -> None:
    api.register(PAY)
    api.harness.agent("echo")
    execution = api.start("pay")
    before = api.get(f"/executions/{execution}?include_events=true").json()["events"]
    bad = api.post(f"/executions/{execution}/signals/payment", json={"data": {"amount": "ten"}})
    assert bad.status_code == 422 and bad.json()["problems"][0]["location"] == "amount"
    unknown = api.post(f"/executions/{execution}/signals/refund", json={"data": {}})
    assert unknown.status_code == 404 and "waits for signal 'refund'" in unknown.json()["detail"]
    assert (
        api.post(f"/executions/{execution}/signals/payment", "bob", json={"data": {"amount": 1}}).status_code
        == 404
    )
    assert (
        api.post(f"/executions/{execution}/signals/payment", "vic", json={"data": {"amount": 1}}).status_code
        == 403
    )
    assert api.post(f"/executions/{execution}/signals/payment", json={"data": [1]}).status_code == 422
    assert api.get(f"/executions/{execution}?include_events=true").json()["events"] == before
    api.post(f"/executions/{execution}/cancel", json={})
    ended = api.post(f"/executions/{execution}/signals/payment", json={"data": {"amount": 1}})
    assert ended.status_code == 409 and "cancelled" in ended.json()["detail"]
