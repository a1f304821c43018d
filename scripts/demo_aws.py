"""Demo helper: sets up and inspects the emulated data account with boto3 (shipped with moto).

Usage: demo_aws.py setup | show | tamper
"""
import json
import sys

import boto3

DATA = "222222222222"
DEV = "111111111111"


def data_session(account=DATA):
    sts = boto3.client("sts")
    creds = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/xacct-manager", RoleSessionName="demo")["Credentials"]
    return boto3.session.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name="us-east-1",
    )


def setup(s):
    s3, ecr = s.client("s3"), s.client("ecr")
    s3.create_bucket(Bucket="demo-lake")
    s3.put_bucket_policy(Bucket="demo-lake", Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": ["arn:aws:s3:::demo-lake", "arn:aws:s3:::demo-lake/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}))
    ecr.create_repository(repositoryName="demo/app")
    ecr.set_repository_policy(repositoryName="demo/app", policyText=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "LambdaPull", "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
        "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]}]}))
    print("created s3://demo-lake and ecr demo/app in account 222222222222, each with a policy statement someone else wrote")
    iam = data_session(DEV).client("iam")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                                                     "Action": "sts:AssumeRole"}]}
    iam.create_role(RoleName="BatchJobRole", AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(RoleName="BatchJobRole", PolicyName="team-logs", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": "*"}]}))
    print("created the Batch job role BatchJobRole in account 111111111111, with an inline policy of its team's")


def show(s):
    print("== bucket policy of demo-lake ==")
    print(json.dumps(json.loads(s.client("s3").get_bucket_policy(Bucket="demo-lake")["Policy"]), indent=2))
    print("== repository policy of demo/app ==")
    print(json.dumps(json.loads(s.client("ecr").get_repository_policy(repositoryName="demo/app")["policyText"]), indent=2))
    iam = data_session(DEV).client("iam")
    print("== inline policies of BatchJobRole in 111111111111 (the grantee side) ==")
    for name in iam.list_role_policies(RoleName="BatchJobRole")["PolicyNames"]:
        doc = iam.get_role_policy(RoleName="BatchJobRole", PolicyName=name)["PolicyDocument"]
        print(f"-- {name} --")
        print(json.dumps(doc, indent=2))


def tamper(s):
    s3 = s.client("s3")
    doc = json.loads(s3.get_bucket_policy(Bucket="demo-lake")["Policy"])
    removed = next(st for st in doc["Statement"] if st.get("Sid", "").startswith("Xacct"))
    doc["Statement"] = [st for st in doc["Statement"] if st is not removed]
    doc["Statement"].append({"Sid": "ConsoleAddedAuditRead", "Effect": "Allow",
                             "Principal": {"AWS": "arn:aws:iam::333333333333:root"},
                             "Action": "s3:GetBucketLocation", "Resource": "arn:aws:s3:::demo-lake"})
    s3.put_bucket_policy(Bucket="demo-lake", Policy=json.dumps(doc))
    print(f"out of band: removed {removed['Sid']} and added ConsoleAddedAuditRead")


{"setup": setup, "show": show, "tamper": tamper}[sys.argv[1]](data_session())
