"""Waits until the moto server at $AWS_ENDPOINT_URL answers, then seeds what every test needs:

- IAM role `papi-backend` (trust policy for lambda.amazonaws.com) in account 123456789012;
- S3 bucket `papi-testbed-code` with `handler.zip` (a tiny zip holding `bootstrap`), for tests of
  CreateFunction/UpdateFunctionCode with S3Bucket/S3Key (moto checks the object exists, as AWS does).

Usage: python seed.py TIMEOUT_SECONDS PID   (gives up early when PID has exited)
"""
import io
import json
import os
import sys
import time
import urllib.request
import zipfile

import boto3
from botocore.config import Config

timeout = float(sys.argv[1]) if len(sys.argv) > 1 else 60
pid = int(sys.argv[2]) if len(sys.argv) > 2 else 0
url = os.environ["AWS_ENDPOINT_URL"]

deadline = time.monotonic() + timeout
while True:
    try:
        with urllib.request.urlopen(url + "/moto-api/", timeout=2) as r:
            r.read()
        break
    except Exception as e:  # not listening yet
        last = e
    if pid:
        try:
            os.kill(pid, 0)
        except OSError:
            sys.exit(f"moto server (pid {pid}) exited before answering")
    if time.monotonic() > deadline:
        sys.exit(f"moto server at {url} did not answer within {timeout:.0f}s: {last}")
    time.sleep(0.1)

cfg = Config(retries={"max_attempts": 2})
iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1", config=cfg)
trust = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
try:
    iam.create_role(RoleName="papi-backend", AssumeRolePolicyDocument=json.dumps(trust),
                    Description="Lambda execution role for privateapi-operator tests")
except iam.exceptions.EntityAlreadyExistsException:
    pass

s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1", config=cfg)
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w") as z:
    info = zipfile.ZipInfo("bootstrap")
    info.external_attr = 0o755 << 16
    z.writestr(info, "#!/bin/sh\necho papi testbed placeholder\n")
try:
    s3.create_bucket(Bucket="papi-testbed-code")
except s3.exceptions.BucketAlreadyOwnedByYou:
    pass
s3.put_object(Bucket="papi-testbed-code", Key="handler.zip", Body=buf.getvalue())
