"""The three-step flow, clean runs: Batch Meter Usage, the Meter Usage and Resolve Customer variants, and
the aws-sdk comparison peer in step 2. Each ends in the exact audit."""

from __future__ import annotations

from spec.e2e.conftest import MakeFlow
from spec.support.flow import UsagePlan


def test_batch_flow_bills_every_record_exactly_once(make_flow: MakeFlow) -> None:
    plan = UsagePlan.make(messages=120, records_per_message=30)  # 30 records → 2 calls per message
    flow = make_flow(plan)
    flow.publish()
    flow.wait_done(timeout=240)
    audit = flow.audit()
    assert audit.exact, audit.problems()
    assert audit.billed == audit.expected
    assert sum(audit.expected.values()) == 3600
    assert len(plan.customers) >= 200  # many customers, not one
    assert audit.calls == 2 * plan.messages
    assert audit.duplicate_deliveries == 0
    # every step-3 message carries the connector's per-record results for exactly its input's records
    for index, deliveries in flow.sink.items():
        body = deliveries[0].message["body"]
        got = {
            (r["UsageRecord"]["CustomerIdentifier"], r["UsageRecord"]["Dimension"]) for r in body["Results"]
        }
        want = {(r["CustomerIdentifier"], r["Dimension"]) for r in plan.records_of(index)}
        assert got == want
        assert body["StatusCounts"]["Success"] == 30 and sum(body["StatusCounts"].values()) == 30


def test_meter_usage_variant_bills_each_dimension_hour_once(make_flow: MakeFlow) -> None:
    plan = UsagePlan.make(messages=15, fmt="meter")  # 3 dimensions x 5 hours, billed to the caller
    flow = make_flow(plan)
    flow.publish()
    flow.wait_done(timeout=120)
    audit = flow.audit()
    assert audit.exact, audit.problems()
    assert audit.billed == audit.expected and len(audit.billed) == 15
    assert {k[1] for k in audit.billed} == {flow.creds.account_id}
    assert audit.calls == 15


def test_resolve_customer_variant_resolves_every_token(make_flow: MakeFlow) -> None:
    plan = UsagePlan.make(messages=40, fmt="resolve")
    flow = make_flow(plan)
    assert len(plan.tokens) == 40
    flow.publish()
    flow.wait_done(timeout=120)
    audit = flow.audit()
    assert audit.exact, audit.problems()  # includes: each output names the token's own customer
    assert not audit.billed
    resolved = {i: d[0].message["body"]["CustomerIdentifier"] for i, d in flow.sink.items()}
    assert resolved == {i: plan.customers[i] for i in range(40)}


def test_aws_sdk_peer_in_step_2_passes_the_same_audit(make_flow: MakeFlow) -> None:
    plan = UsagePlan.make(messages=100, records_per_message=25)
    flow = make_flow(plan, step2="node")
    flow.publish()
    flow.wait_done(timeout=180)
    audit = flow.audit()
    assert audit.exact, audit.problems()
    assert audit.billed == audit.expected
    assert audit.calls == 100


def test_protocol_version_2_everywhere_and_graceful_sigterm(make_flow: MakeFlow) -> None:
    """The platform switches neighbours to raw-binary messages (protocol 2): Node → Python → Node still
    meters exactly; afterwards SIGTERM stops our sailor gracefully (exit 0)."""
    plan = UsagePlan.make(messages=60, records_per_message=5)
    flow = make_flow(plan, env={"ELASTICIO_PROTOCOL_VERSION": "2"})
    flow.publish()
    flow.wait_done(timeout=180)
    audit = flow.audit()
    assert audit.exact, audit.problems()
    assert audit.billed == audit.expected
    outputs = flow.platform.drain(flow.step2.out_queue("message"), timeout=60)
    assert len(outputs) == plan.messages
    assert {o.headers.get("protocolVersion") for o in outputs} == {2}
    # decoded as raw ciphertext per the header (a base64 body would not decrypt)
    assert all("Results" in o.message["body"] for o in outputs)
    assert [p.terminate(timeout=20) for p in flow.step2_procs()] == [0]


def test_one_big_batch_per_message_and_one_message_per_record(make_flow: MakeFlow) -> None:
    """A billing export that sends 1,250 records in one message (50 calls), and the per-record output
    mode: step 3 gets one message per record, each with its MeteringRecordId."""
    plan = UsagePlan.make(messages=2, records_per_message=1250)
    flow = make_flow(plan, step2_fields={"emitPerRecord": True})
    flow.publish()
    flow.wait_done(timeout=240)
    flow.wait_until(lambda f: sum(len(v) for v in f.sink.values()) >= 2500, timeout=120, what="2,500 records")
    audit = flow.audit()
    assert audit.exact, audit.problems()
    assert audit.billed == audit.expected and len(audit.billed) == 2500
    assert audit.calls == 100
    for index in range(2):
        got = {
            (
                d.message["body"]["UsageRecord"]["CustomerIdentifier"],
                d.message["body"]["UsageRecord"]["Dimension"],
                d.message["body"]["MeteringRecordId"],
            )
            for d in flow.sink[index]
        }
        assert len(got) == 1250  # every record of the message, each with its own id
        assert {g[:2] for g in got} == {
            (r["CustomerIdentifier"], r["Dimension"]) for r in plan.records_of(index)
        }


def test_a_result_split_in_parts_fits_the_outgoing_limit_of_a_passthrough_step(make_flow: MakeFlow) -> None:
    """Step 2 is a passthrough step: the sailor publishes the incoming passthrough (step 1's 300 records) and a
    second copy of each body, encrypted. The connector's parts must leave room for that, or the sailor refuses
    the publish after the records were billed (before: one 75 kB summary, a 260 kB message over a 200 kB limit)."""
    plan = UsagePlan.make(messages=2, records_per_message=300)
    flow = make_flow(plan, step2_env={"ELASTICIO_OUTGOING_MESSAGE_SIZE_LIMIT": "200000"})
    flow.publish()
    flow.wait_done(timeout=120, settle=3.0)
    assert not flow.errors and not flow.error_outputs
    audit = flow.audit()
    assert audit.billed == audit.expected and not audit.double_billed
    for index in range(plan.messages):
        parts = [d.message["body"] for d in flow.sink[index]]
        assert len(parts) >= 2 and sorted(p["Part"] for p in parts) == list(range(1, len(parts) + 1))
        results = sorted((r for p in parts for r in p["Results"]), key=lambda r: r["RecordIndex"])
        assert [r["RecordIndex"] for r in results] == list(range(300))
        assert all(r["Status"] == "Success" and r["MeteringRecordId"] for r in results)
