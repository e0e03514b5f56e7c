"""Drill: 10% of the messages invalid (bad fields, wrong types, garbage bodies)."""

from __future__ import annotations

from spec.e2e.conftest import MakeFlow
from spec.support.flow import INVALID_KINDS, UsagePlan


def test_each_invalid_message_yields_one_clear_error_and_no_call(make_flow: MakeFlow) -> None:
    plan = UsagePlan.make(messages=400, records_per_message=3, invalid_every=10)
    invalid = [i for i in range(plan.messages) if plan.is_invalid(i)]
    assert len(invalid) == 40
    assert {plan.invalid_kind(i) for i in invalid} == set(INVALID_KINDS)  # every kind of garbage sent
    flow = make_flow(plan)
    flow.publish()
    flow.wait_done(timeout=240)
    audit = flow.audit()
    print(audit.table())  # shown with -s, and on failure
    # exact audit: valid records billed once; every invalid message on the error queue naming its field
    assert audit.exact, audit.problems()
    assert audit.billed == audit.expected
    assert sorted(flow.errors) == invalid
    assert all(len(flow.errors[i]) == 1 for i in invalid)  # one error message each
    # no API call for an invalid message: exactly one BatchMeterUsage call per valid message
    assert audit.calls == plan.messages - len(invalid)
    # the valid ones are unaffected
    assert sorted(flow.sink) == plan.valid_indexes()
    for i in invalid:
        err = flow.errors[i][0].message
        assert err["error"]["message"], err
        assert err["errorInput"]["id"] == plan.message_id(i)  # the platform can show the failed input
