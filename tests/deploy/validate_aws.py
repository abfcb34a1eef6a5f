#!/usr/bin/env python3
"""Validates AWS request documents against the API models botocore ships, as the SDK does
before it sends a request (required members, types, enums, lengths).

    validate_aws.py SERVICE OPERATION FILE.json

Exits 1 with botocore's message when the document is not a valid input of the operation.
"""
import json
import sys

import botocore.session
from botocore.exceptions import ParamValidationError
from botocore.validate import validate_parameters

service, operation, path = sys.argv[1:4]
with open(path) as f:
    params = json.load(f)
model = botocore.session.get_session().get_service_model(service)
try:
    validate_parameters(params, model.operation_model(operation).input_shape)
except ParamValidationError as e:
    print(f"{path}: {e}", file=sys.stderr)
    sys.exit(1)
# Scheduler's target input is a request of its own (here Batch's SubmitJob).
target = params.get("Target", {})
if target.get("Arn", "").startswith("arn:aws:scheduler:::aws-sdk:batch:submitJob"):
    inner = json.loads(target["Input"])
    # The universal target takes the API's own (capitalised) member names.
    inner = {k[0].lower() + k[1:]: v for k, v in inner.items()}
    inner["containerOverrides"] = {
        k[0].lower() + k[1:]: v for k, v in inner.get("containerOverrides", {}).items()
    }
    batch = botocore.session.get_session().get_service_model("batch")
    try:
        validate_parameters(inner, batch.operation_model("SubmitJob").input_shape)
    except ParamValidationError as e:
        print(f"{path}: the target's SubmitJob input: {e}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(inner["containerOverrides"]["command"]))
