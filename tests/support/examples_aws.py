"""Creates in the AWS emulator (moto, at AWS_ENDPOINT_URL) what the manifests under examples/ name:
buckets, repositories, keys, roles, users, instance profiles, the SageMaker endpoint and the RDS
snapshots, in the accounts and regions of examples/*/accounts.yaml. Prints {"keyId": ...}: the id
of the key the examples name by a placeholder ARN. Used by tests/examples.rs to plan the whole
folder (`xacct plan -f examples/`)."""
import json

import boto3

TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
    "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


def session(account, region):
    creds = boto3.client("sts", region_name="us-east-1").assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/xacct-manager", RoleSessionName="examples")["Credentials"]
    return boto3.session.Session(aws_access_key_id=creds["AccessKeyId"],
                                 aws_secret_access_key=creds["SecretAccessKey"],
                                 aws_session_token=creds["SessionToken"], region_name=region)


def roles(iam, names):
    for name in names:
        path = "/"
        if "/" in name:
            path, name = "/" + name.rsplit("/", 1)[0] + "/", name.rsplit("/", 1)[1]
        iam.create_role(RoleName=name, Path=path, AssumeRolePolicyDocument=TRUST)


def instance_profile(iam, profile, role):
    roles(iam, [role])
    iam.create_instance_profile(InstanceProfileName=profile)
    iam.add_role_to_instance_profile(InstanceProfileName=profile, RoleName=role)


def main():
    seoul, virginia = "ap-northeast-2", "us-east-1"
    # 111111111111: dev (demo) and workloads; IAM is global.
    iam = session("111111111111", virginia).client("iam")
    roles(iam, ["BatchJobRole", "EcsTaskRole", "CodeBuildRole", "TrainingJobExecutionRole",
                "ApiTaskExecutionRole", "EcsInstanceRole", "TrainingJobRole", "ApiTaskRole",
                "ReportInstanceRole", "ChurnApiTaskRole", "OnCallEngineer"])
    instance_profile(iam, "BatchInstanceProfile", "BatchInstanceRole")
    instance_profile(iam, "ReportInstanceProfile", "ReportInstanceProfileRole")
    for user in ["analyst", "developer", "alice"]:
        iam.create_user(UserName=user)

    # 222222222222: data-prod (us-east-1), data (Seoul), prod (Seoul).
    data = session("222222222222", virginia)
    data.client("s3").create_bucket(Bucket="demo-lake")
    data.client("ecr").create_repository(repositoryName="demo/app")
    roles(data.client("iam"), ["ProdReadOnly", "DataReader", "VendorAudit"])
    seoul_data = session("222222222222", seoul)
    seoul_data.client("s3").create_bucket(
        Bucket="ml-data-lake", CreateBucketConfiguration={"LocationConstraint": seoul})
    kms = seoul_data.client("kms")
    lake_key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/ml-data-lake", TargetKeyId=lake_key)
    # The key the examples name by ARN: the emulator picks its id (printed for the caller to put in
    # place of the examples' placeholder).
    by_arn = kms.create_key()["KeyMetadata"]["KeyId"]
    rds = data.client("rds")
    key = data.client("kms").create_key()["KeyMetadata"]["KeyId"]
    data.client("kms").create_alias(AliasName="alias/share-key", TargetKeyId=key)
    rds.create_db_instance(DBInstanceIdentifier="orders", DBInstanceClass="db.t3.micro", Engine="postgres",
                           MasterUsername="admin", MasterUserPassword="not-a-secret-1", AllocatedStorage=20,
                           StorageEncrypted=True, KmsKeyId=key)
    rds.create_db_snapshot(DBInstanceIdentifier="orders", DBSnapshotIdentifier="orders-2026-11-01")

    # The queue, topic and secret of the sqs-queue, sns-topic and secret examples.
    seoul_data.client("sqs").create_queue(QueueName="order-events")
    seoul_data.client("sns").create_topic(Name="order-notifications")
    secrets_key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/orders-secrets", TargetKeyId=secrets_key)
    seoul_data.client("secretsmanager").create_secret(
        Name="orders-db-credentials", SecretString="not-a-secret", KmsKeyId=secrets_key)

    # The function of the lambda-function example (moto does not run its code: an empty zip).
    roles(seoul_data.client("iam"), ["ThumbnailsExecution"])
    seoul_data.client("lambda").create_function(
        FunctionName="thumbnails", Runtime="python3.12", Handler="index.handler",
        Role="arn:aws:iam::222222222222:role/ThumbnailsExecution",
        Code={"ZipFile": b"PK\x05\x06" + b"\x00" * 18})

    # The event bus of the event-bus example.
    seoul_data.client("events").create_event_bus(Name="order-events-bus")

    # 333333333333: registry (Seoul).
    session("333333333333", seoul).client("ecr").create_repository(repositoryName="platform/trainer")

    # 555555555555: ml (Seoul), the endpoint churn-predictor.
    sagemaker = session("555555555555", seoul).client("sagemaker")
    sagemaker.create_model(ModelName="churn-model",
                           ExecutionRoleArn="arn:aws:iam::555555555555:role/sagemaker-execution",
                           PrimaryContainer={"Image": "555555555555.dkr.ecr.ap-northeast-2.amazonaws.com/churn:latest"})
    sagemaker.create_endpoint_config(EndpointConfigName="churn-config", ProductionVariants=[{
        "VariantName": "main", "ModelName": "churn-model", "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large"}])
    sagemaker.create_endpoint(EndpointName="churn-predictor", EndpointConfigName="churn-config")

    # 666666666666: shared-services (Seoul), shared with the whole organization.
    shared = session("666666666666", seoul)
    shared.client("ecr").create_repository(repositoryName="base/python")
    shared.client("s3").create_bucket(
        Bucket="org-reference-datasets", CreateBucketConfiguration={"LocationConstraint": seoul})
    print(json.dumps({"keyId": by_arn}))


if __name__ == "__main__":
    main()
