"""Benchmark: import-and-first-call time of the connector vs boto3, measured inside fresh processes.

Each sample is a new interpreter; the clock starts after interpreter start-up, just before the first
import, and stops when the first ResolveCustomer answer is parsed. The emulator runs in its own process.
Two connector paths are measured: the client alone (typed settings, as boto3.client(...) takes them), and
the whole action as the sailor runs it (cfg and message validated first, by the checks lib/validation.py
compiles from the schemas). The role
modes are reported beside them (they import botocore's credential providers and make one credentials
call first: AssumeRole to the emulator's STS, or the emulator's ECS container-credentials endpoint);
the access-key rows must not move when role modes change, since that path never imports botocore.

    python bench/connector_import.py [--samples 7]

Goal: connector/boto3 <= 0.5. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.connector_common import ACCESS_KEY, ROOT, SECRET_KEY, TOKEN, EmulatorProcess

ROLE = "arn:aws:iam::999988887777:role/metering-seller"
EXTERNAL_ID = "bench-external-id"
WORKLOAD_ROLE = "arn:aws:iam::444455556666:role/metering-workload"
# The emulator's demo fixtures plus the two roles (emulator/README.md "Roles and workload identity").
FIXTURES = {
    "credentials": [{"accessKeyId": ACCESS_KEY, "secretAccessKey": SECRET_KEY, "accountId": "111122223333"}],
    "products": [{"productCode": "emu-demo-product-0001", "dimensions": ["users"],
                  "customers": [{"customerIdentifier": "cust-demo-0001"}]}],
    "registrationTokens": [{"token": TOKEN, "productCode": "emu-demo-product-0001",
                            "customer": {"customerIdentifier": "cust-demo-0001"}}],
    "roles": [{"roleArn": ROLE, "externalId": EXTERNAL_ID, "trust": {"accessKeys": [ACCESS_KEY]}},
              {"roleArn": WORKLOAD_ROLE}],
    "containerCredentials": {"roleArn": WORKLOAD_ROLE},
}

SNIPPETS = {
    "connector client": """
import time, sys
t0 = time.perf_counter()
from lib.client import MeteringClient, Settings
from lib.operations import OPERATIONS
client = MeteringClient(Settings.create(CFG["accessKeyId"], CFG["secretAccessKey"], endpoint_url=CFG["endpointUrl"]))
client.call(OPERATIONS["resolveCustomer"], {"RegistrationToken": TOKEN})
print(time.perf_counter() - t0)
""",
    "connector action": """
import time, sys
import elasticio_sailor  # the runtime is loaded before any component function
t0 = time.perf_counter()
from actions import resolveCustomer
class Ctx:
    logger = None
    message_id = None
resolveCustomer.process(Ctx(), {"id": "m-1", "body": {"RegistrationToken": TOKEN}}, CFG, {})
print(time.perf_counter() - t0)
""",
    "connector assume role": """
import time, sys
t0 = time.perf_counter()
from lib.client import MeteringClient, Settings
from lib.operations import OPERATIONS
client = MeteringClient(Settings.create(CFG["accessKeyId"], CFG["secretAccessKey"], endpoint_url=CFG["endpointUrl"],
                                        auth_mode="assumeRole", role_arn=ROLE, external_id=EXTERNAL_ID,
                                        sts_endpoint_url=CFG["endpointUrl"]))
client.call(OPERATIONS["resolveCustomer"], {"RegistrationToken": TOKEN})
print(time.perf_counter() - t0)
""",
    "connector workload": """
import time, sys, os
os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = CFG["endpointUrl"] + "/v2/credentials/bench"
t0 = time.perf_counter()
from lib.client import MeteringClient, Settings
from lib.operations import OPERATIONS
client = MeteringClient(Settings.create(endpoint_url=CFG["endpointUrl"], auth_mode="workloadIdentity"))
client.call(OPERATIONS["resolveCustomer"], {"RegistrationToken": TOKEN})
print(time.perf_counter() - t0)
""",
    "boto3": """
import time, sys
t0 = time.perf_counter()
import boto3
client = boto3.client("meteringmarketplace", region_name="us-east-1", endpoint_url=CFG["endpointUrl"],
                      aws_access_key_id=CFG["accessKeyId"], aws_secret_access_key=CFG["secretAccessKey"])
client.resolve_customer(RegistrationToken=TOKEN)
print(time.perf_counter() - t0)
""",
}


def sample(code: str, cfg: dict[str, str]) -> float:
    prelude = f"CFG = {json.dumps(cfg)}\nTOKEN = {TOKEN!r}\nROLE = {ROLE!r}\nEXTERNAL_ID = {EXTERNAL_ID!r}\n"
    empty = str(Path(tempfile.gettempdir()) / "bench-no-aws-config")
    out = subprocess.run([sys.executable, "-c", prelude + code], cwd=ROOT, capture_output=True, text=True,
                         check=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
                                          "AWS_CONFIG_FILE": empty, "AWS_SHARED_CREDENTIALS_FILE": empty})
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=7)
    args = parser.parse_args()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(FIXTURES, handle)
    with EmulatorProcess("--no-quotas", "--fixtures", handle.name) as emu:
        cfg = {"accessKeyId": ACCESS_KEY, "secretAccessKey": SECRET_KEY, "endpointUrl": emu.url}
        times: dict[str, list[float]] = {name: [] for name in SNIPPETS}
        for _ in range(args.samples):  # interleaved so machine noise hits all three alike
            for name, code in SNIPPETS.items():
                times[name].append(sample(code, cfg))
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"import + first call, inside a fresh process (median of {args.samples})")
    for name, value in medians.items():
        ratio = value / medians["boto3"]
        print(f"{name:22} {value * 1000:8.1f} ms   ratio vs boto3 {ratio:5.2f}")
    print("goal: ratio <= 0.50")


if __name__ == "__main__":
    main()
