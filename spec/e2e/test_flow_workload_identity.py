"""The three-step flow with step 2 in Workload identity mode: the sailor's container has EKS IRSA variables
(AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN, AWS_ENDPOINT_URL_STS) pointing at the emulator, which refuses
long-term keys for MeterUsage as AWS documents. Every usage is billed once, signed by the role's sessions."""

from __future__ import annotations

from pathlib import Path

from spec.support.flow import FlowOptions, MeteringFlow, UsagePlan, scan_files, scan_queues
from spec.support.rabbit import RabbitBroker

ISSUER = "https://oidc.eks.us-east-1.amazonaws.com/id/E2EFLOW"
SUBJECT = "system:serviceaccount:metering:connector"
TOKEN = "e2eWIT.Xr4Pq7Lm2Ns9Kd6Vb3.Secret"


def test_meter_usage_flow_in_workload_identity_mode_via_irsa(rabbit: RabbitBroker, tmp_path: Path) -> None:
    token_file = tmp_path / "eks-token"
    token_file.write_text(TOKEN)
    empty = tmp_path / "no-aws-config"
    empty.write_text("")
    plan = UsagePlan.make(messages=15, fmt="meter")  # 3 dimensions x 5 hours, billed to the caller
    options = FlowOptions(
        log_level="debug",
        step2_fields={"authMode": "workloadIdentity"},
        step2_env={"AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file), "AWS_ENDPOINT_URL_STS": "{emulator}",
                   "AWS_ROLE_SESSION_NAME": "e2e-pod", "AWS_CONFIG_FILE": str(empty),
                   "AWS_SHARED_CREDENTIALS_FILE": str(empty),
                   "AWS_EC2_METADATA_DISABLED": "true"},
    )
    flow = MeteringFlow(tmp_path / "flow", rabbit, plan, options, emulator_args=["--refuse-long-term-keys"])
    # The pod's role lives in the caller's account, so the audit's "billed to the caller" holds.
    role = f"arn:aws:iam::{flow.creds.account_id}:role/metering-workload"
    options.step2_env["AWS_ROLE_ARN"] = role
    assert flow.emulator.fixtures is not None  # the flow's generated fixtures, written at start
    flow.emulator.fixtures.update({
        "roles": [{"roleArn": role, "platform": "eks",
                   "trust": {"webIdentity": [{"issuer": ISSUER, "subject": SUBJECT}]}}],
        "webIdentityTokens": [{"token": TOKEN, "issuer": ISSUER, "subject": SUBJECT}],
    })
    with flow:
        flow.publish()
        flow.wait_done(timeout=120)
        audit = flow.audit()
        assert audit.exact, audit.problems()
        assert audit.billed == audit.expected and len(audit.billed) == 15
        assert {k[1] for k in audit.billed} == {flow.creds.account_id}
        sessions = flow.emulator.admin.call("GET", "sts/sessions")
        assert sessions["issued"] == {"AssumeRoleWithWebIdentity": 1}  # one session, cached for every message
        session_key = sessions["sessions"][0]["accessKeyId"]
        assert {r["accessKeyId"] for r in flow.emulator.records()} == {session_key}  # signed by the role, not by keys
        assert flow.creds.access_key_id not in {r["accessKeyId"] for r in flow.emulator.records()}
        # Secret drill: the web-identity token never reaches a log line (debug logging) or a queued message.
        flow.stop()
        lines, in_logs = scan_files([*flow.log_files(), flow.sink_path], {"webIdentityToken": TOKEN})
        assert lines > 50 and in_logs == []
        scanned, in_queues = scan_queues(flow, {"webIdentityToken": TOKEN})
        assert scanned >= plan.messages and in_queues == []
