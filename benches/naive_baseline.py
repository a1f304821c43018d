"""The naive baseline of the convergence benchmark (benches/converge): what a script using the AWS SDK
for Python would do, one grant at a time: read the resource's policy, put the grant's statements in
it (by Sid), write it back if that changed anything.

Sequential on purpose: per-grant read-modify-write of a shared policy is only correct one grant at a
time (two grants on one policy written concurrently lose one of them). One boto3 session per
account (one sts:AssumeRole each), as a reasonable script would cache it.

Usage: python naive_baseline.py SPEC.json, with AWS_ENDPOINT_URL and credentials in the environment.
SPEC: {"region": ..., "grants": [{"accountId", "kind", "resource", "statements"}, ...]} (the benchmark
writes it, with xacct's own statements so that both end with the same policies). Runs two passes
(cold, then again with nothing to change) and prints one JSON object:
{"cold"|"steady": {"seconds": float, "writes": int, "calls": [[service, operation, outcome, count], ...]}}.
"""
import collections
import json
import os
import sys
import time

import boto3
from botocore.exceptions import ClientError

NO_POLICY = {"NoSuchBucketPolicy", "RepositoryPolicyNotFoundException"}


class Baseline:
    def __init__(self, spec):
        self.spec = spec
        self.region = spec["region"]
        self.endpoint = os.environ.get("AWS_ENDPOINT_URL")
        self.calls = collections.Counter()
        self.sessions = {}

    def count(self, http_response=None, model=None, **_):
        status = getattr(http_response, "status_code", 0)
        outcome = "success" if 200 <= status < 300 else "error"
        self.calls[(model.service_model.service_id, model.name, outcome)] += 1

    def client(self, service, session=None):
        client = (session or boto3).client(service, region_name=self.region, endpoint_url=self.endpoint)
        client.meta.events.register("after-call", self.count)
        return client

    def clients(self, account_id):
        if account_id not in self.sessions:
            creds = self.client("sts").assume_role(
                RoleArn=f"arn:aws:iam::{account_id}:role/xacct-manager", RoleSessionName="naive"
            )["Credentials"]
            session = boto3.session.Session(
                aws_access_key_id=creds["AccessKeyId"],
                aws_secret_access_key=creds["SecretAccessKey"],
                aws_session_token=creds["SessionToken"],
            )
            self.sessions[account_id] = {s: self.client(s, session) for s in ("s3", "ecr", "kms")}
        return self.sessions[account_id]

    def read(self, c, kind, name):
        try:
            if kind == "S3Bucket":
                return c["s3"].get_bucket_policy(Bucket=name)["Policy"]
            if kind == "EcrRepository":
                return c["ecr"].get_repository_policy(repositoryName=name)["policyText"]
            return c["kms"].get_key_policy(KeyId=name, PolicyName="default")["Policy"]
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in NO_POLICY:
                return None
            raise

    def write(self, c, kind, name, text):
        if kind == "S3Bucket":
            c["s3"].put_bucket_policy(Bucket=name, Policy=text)
        elif kind == "EcrRepository":
            c["ecr"].set_repository_policy(repositoryName=name, policyText=text)
        else:
            c["kms"].put_key_policy(KeyId=name, PolicyName="default", Policy=text)

    def apply(self, grant):
        """One grant: read, merge its statements by Sid, write if anything changed."""
        c = self.clients(grant["accountId"])
        text = self.read(c, grant["kind"], grant["resource"])
        doc = json.loads(text) if text else {"Version": "2012-10-17", "Statement": []}
        statements = doc.get("Statement", [])
        if isinstance(statements, dict):
            statements = [statements]
        changed = False
        for wanted in grant["statements"]:
            at = next((i for i, s in enumerate(statements) if s.get("Sid") == wanted["Sid"]), None)
            if at is None:
                statements.append(wanted)
                changed = True
            elif statements[at] != wanted:
                statements[at] = wanted
                changed = True
        if changed:
            doc["Statement"] = statements
            self.write(c, grant["kind"], grant["resource"], json.dumps(doc, separators=(",", ":")))
        return changed

    def run_pass(self):
        self.calls.clear()
        started = time.perf_counter()
        writes = sum(1 for grant in self.spec["grants"] if self.apply(grant))
        seconds = time.perf_counter() - started
        calls = [[s, o, r, n] for (s, o, r), n in sorted(self.calls.items())]
        return {"seconds": seconds, "writes": writes, "calls": calls}


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    baseline = Baseline(spec)
    cold = baseline.run_pass()
    steady = baseline.run_pass()
    print(json.dumps({"cold": cold, "steady": steady}))


if __name__ == "__main__":
    main()
