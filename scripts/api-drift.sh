#!/usr/bin/env bash
# Reports drift between this project and the newest Metering API model a machine can install:
# downloads the newest botocore wheel from the package index (no install), extracts its
# meteringmarketplace model and runs the model-drift tests of the connector and the emulator against it.
#   scripts/api-drift.sh              newest botocore
#   scripts/api-drift.sh 1.45.0       a given version
# Exit 0: nothing to do. Otherwise the failing assertions name each member, shape, constraint or error
# that the connector's schemas / error table or the emulator's model do not know yet.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
spec="botocore${1:+==$1}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
.venv/bin/python -m pip download -q --disable-pip-version-check --no-deps -d "$work" "$spec"
wheel=$(ls "$work"/botocore-*.whl)
.venv/bin/python - "$wheel" "$work" <<'PY'
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as zf:
    names = [n for n in zf.namelist() if "/data/meteringmarketplace/" in n and "/service-2.json" in n]
    if not names:
        sys.exit("no meteringmarketplace model in " + wheel)
    name = sorted(names)[-1]
    target = out + "/service-2.json" + (".gz" if name.endswith(".gz") else "")
    with open(target, "wb") as handle:
        handle.write(zf.read(name))
    print(f"comparing against {wheel.rsplit('/', 1)[-1]}: {name}")
PY
model=$(ls "$work"/service-2.json*)
tests=(spec/connector/test_botocore_model.py)
for extra in spec/emulator/test_model_drift.py; do
  [ -f "$extra" ] && tests+=("$extra")
done
METERING_MODEL="$model" exec .venv/bin/python -m pytest -q -p no:cacheprovider "${tests[@]}"
