"""Identity fixtures for the emulator (roles, trust, web-identity tokens, instance and container roles) and
the environment that points botocore's credential providers at the emulator. Shared by the emulator,
connector and e2e specs; see emulator/README.md "Roles and workload identity"."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from metering_emulator.testing import DEFAULT_FIXTURES

from spec.support.ports import closed_port_url

SELLER_ACCOUNT = "111122223333"
SELLER_ROLE = "arn:aws:iam::999988887777:role/metering-seller"
EXTERNAL_ID = "ext-id-Secret-7f3a9c1e"
WORKLOAD_ROLE = "arn:aws:iam::444455556666:role/metering-workload"
ISSUER = "https://oidc.eks.us-east-1.amazonaws.com/id/EMULATOR0000"
SUBJECT = "system:serviceaccount:metering:connector"
WEB_TOKEN = "emuWIT.Zq8Rk2Lp9Xv4Tn7Wm3Yb6.Secret0001"  # shaped like no other string in the logs
CONTAINER_AUTH = "cAuth.Hq5Vd8Ks2Nf7Jb4.Secret0001"
SOURCE_KEY = "AKIAEMULATOR0000TEST"
SOURCE_SECRET = "emulator/Secret+Key/DoNotUseInProduction00"


def identity_fixtures(*, max_duration: float = 3600) -> dict[str, Any]:
    """The default fixtures plus a seller role (External ID, trusts the default long-term key and the
    workload role's account) and a workload role (trusts the EKS OIDC subject; instance and task role)."""
    doc = copy.deepcopy(DEFAULT_FIXTURES)
    doc["roles"] = [
        {"roleArn": SELLER_ROLE, "externalId": EXTERNAL_ID, "maxSessionDurationSeconds": max_duration,
         "trust": {"accessKeys": [SOURCE_KEY], "accounts": ["444455556666"]}},
        {"roleArn": WORKLOAD_ROLE, "platform": "eks", "maxSessionDurationSeconds": max_duration,
         "trust": {"webIdentity": [{"issuer": ISSUER, "subject": SUBJECT}]}},
    ]
    doc["webIdentityTokens"] = [{"token": WEB_TOKEN, "issuer": ISSUER, "subject": SUBJECT}]
    doc["instanceProfile"] = {"roleArn": WORKLOAD_ROLE}
    doc["containerCredentials"] = {"roleArn": WORKLOAD_ROLE, "authorizationToken": CONTAINER_AUTH}
    # The role accounts buy the product: MeterUsage entitlement is checked against the caller's account.
    doc["products"][0]["customers"] += [{"customerAWSAccountId": "444455556666"},
                                        {"customerAWSAccountId": "999988887777"}]
    return doc


WORKLOAD_ENV_NAMES = ("AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME",
                      "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                      "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                      "AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_EC2_METADATA_DISABLED", "AWS_ENDPOINT_URL_STS",
                      "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                      "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")


def workload_env(kind: str, emulator_url: str, tmp: Path) -> dict[str, str]:
    """Environment variables of a workload of ``kind`` (irsa | ecs | ec2 | none) served by the emulator.

    Every kind points IMDS at the emulator or at a closed port so nothing ever tries 169.254.169.254, and
    the shared config files at empty files so the machine's own ~/.aws is never read.
    """
    empty = tmp / "aws-empty-config"
    empty.write_text("")
    env = {"AWS_CONFIG_FILE": str(empty), "AWS_SHARED_CREDENTIALS_FILE": str(empty),
           "AWS_EC2_METADATA_SERVICE_ENDPOINT": closed_port_url()}
    if kind == "irsa":
        token_file = tmp / "web-identity-token"
        token_file.write_text(WEB_TOKEN)
        env.update({"AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file), "AWS_ROLE_ARN": WORKLOAD_ROLE,
                    "AWS_ROLE_SESSION_NAME": "connector-test", "AWS_ENDPOINT_URL_STS": emulator_url})
    elif kind == "ecs":
        env.update({"AWS_CONTAINER_CREDENTIALS_FULL_URI": emulator_url.rstrip("/") + "/v2/credentials/task-1",
                    "AWS_CONTAINER_AUTHORIZATION_TOKEN": CONTAINER_AUTH})
    elif kind == "ec2":
        env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = emulator_url.rstrip("/") + "/"
    elif kind != "none":
        raise ValueError(kind)
    return env
