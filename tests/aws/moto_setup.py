#!/usr/bin/env python3
"""Creates IAM users and keys in a moto server, then turns its authentication on.

    moto_setup.py ENDPOINT

Prints JSON: for each of `alice` (a live key), `deleted` (a key made then deleted) and `admin`
(an Action:* Resource:* user), its user name, ARN, account, access key id and secret.
"""
import json
import sys
import urllib.request

import boto3

endpoint = sys.argv[1]
iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id="testing", aws_secret_access_key="testing")
out = {}
for name in ["alice", "bob", "admin"]:
    user = iam.create_user(UserName=name, Tags=[{"Key": "owner", "Value": f"{name}@example.com"}])["User"]
    key = iam.create_access_key(UserName=name)["AccessKey"]
    out[name] = {"user": name, "arn": user["Arn"], "account": user["Arn"].split(":")[4],
                 "key_id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
# moto ignores an Inactive status when authenticating: "deleted" is the invalid key.
iam.delete_access_key(UserName="bob", AccessKeyId=out["bob"]["key_id"])
out["deleted"] = out.pop("bob")
# From now on every request must be signed by a key that exists.
urllib.request.urlopen(urllib.request.Request(
    f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST",
    headers={"Content-Type": "application/json"}))
print(json.dumps(out))
