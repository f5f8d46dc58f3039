"""`make iam-policy`: least-privilege policies for the execution role and the scheduler role."""

from __future__ import annotations

from pipelines.plan import Plan


def _arn_parts(plan: Plan) -> tuple[str, str, str]:
    account = plan.spec.aws.role.split(":")[4]
    return "aws", plan.spec.aws.region, account


def _s3_reads(plan: Plan) -> list[str]:
    uris = [plan.parameters["DataSource"].default] + [m.pretrained_uri for m in plan.models if m.pretrained_uri]
    return sorted({"arn:aws:s3:::" + u[5:].rstrip("/") + "*" for u in uris if str(u).startswith("s3://")})


def execution_policy(plan: Plan) -> dict:
    partition, region, account = _arn_parts(plan)
    aws = plan.spec.aws
    bucket, prefix = aws.bucket, aws.prefix.strip("/")
    jobs = f"arn:{partition}:sagemaker:{region}:{account}"
    job_arns = [f"{jobs}:processing-job/*", f"{jobs}:training-job/*", f"{jobs}:hyper-parameter-tuning-job/*"]
    statements = [
        {"Sid": "ExperimentPrefix", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
         "Resource": [f"arn:aws:s3:::{bucket}/{prefix}/{plan.spec.name}/*", f"arn:aws:s3:::{bucket}/{prefix}/code/*"]},
        {"Sid": "ListExperimentPrefix", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}",
         "Condition": {"StringLike": {"s3:prefix": [f"{prefix}/{plan.spec.name}/*", f"{prefix}/code/*"]}}},
        {"Sid": "ReadInputs", "Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": _s3_reads(plan)},
        {"Sid": "CreateTaggedJobs", "Effect": "Allow",
         "Action": ["sagemaker:CreateProcessingJob", "sagemaker:CreateTrainingJob", "sagemaker:CreateHyperParameterTuningJob",
                    "sagemaker:AddTags"],
         "Resource": job_arns, "Condition": {"StringEquals": {"aws:RequestTag/smpipe:experiment": plan.spec.name}}},
        {"Sid": "WatchJobs", "Effect": "Allow",
         "Action": ["sagemaker:DescribeProcessingJob", "sagemaker:DescribeTrainingJob",
                    "sagemaker:DescribeHyperParameterTuningJob", "sagemaker:StopProcessingJob", "sagemaker:StopTrainingJob",
                    "sagemaker:StopHyperParameterTuningJob", "sagemaker:ListTags"],
         "Resource": job_arns, "Condition": {"StringEquals": {"aws:ResourceTag/smpipe:experiment": plan.spec.name}}},
        {"Sid": "Pipeline", "Effect": "Allow", "Action": ["sagemaker:DescribePipeline", "sagemaker:StartPipelineExecution",
                                                           "sagemaker:DescribePipelineExecution"],
         "Resource": [f"{jobs}:pipeline/{plan.pipeline_name.lower()}", f"{jobs}:pipeline/{plan.pipeline_name.lower()}/*"]},
        {"Sid": "PassOwnRole", "Effect": "Allow", "Action": "iam:PassRole", "Resource": aws.role,
         "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}},
        {"Sid": "Image", "Effect": "Allow", "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                                                        "ecr:BatchCheckLayerAvailability"],
         "Resource": _repository_arn(aws.image_uri, region, account)},
        {"Sid": "ImageToken", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        {"Sid": "Logs", "Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
                                                       "logs:DescribeLogStreams"],
         "Resource": f"arn:{partition}:logs:{region}:{account}:log-group:/aws/sagemaker/*"},
        {"Sid": "Metrics", "Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*",
         "Condition": {"StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/*", "aws/sagemaker/*"]}}},
    ]
    if plan.spec.register.group and plan.spec.steps.register:
        group = plan.spec.register.group
        statements.append({"Sid": "Registry", "Effect": "Allow",
                           "Action": ["sagemaker:CreateModelPackage", "sagemaker:DescribeModelPackageGroup",
                                      "sagemaker:CreateModelPackageGroup"],
                           "Resource": [f"{jobs}:model-package-group/{group}", f"{jobs}:model-package/{group}/*"]})
    if aws.kms_key:
        statements.append({"Sid": "Kms", "Effect": "Allow", "Resource": aws.kms_key,
                           "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*", "kms:CreateGrant",
                                      "kms:DescribeKey"]})
    if plan.spec.tracking.wandb.api_key_secret:
        statements.append({"Sid": "WandbKey", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
                           "Resource": f"arn:{partition}:secretsmanager:{region}:{account}:secret:"
                                       f"{plan.spec.tracking.wandb.api_key_secret}-*"})
    if aws.subnets:
        statements.append({"Sid": "Vpc", "Effect": "Allow", "Resource": "*",
                           "Action": ["ec2:CreateNetworkInterface", "ec2:CreateNetworkInterfacePermission",
                                      "ec2:DeleteNetworkInterface", "ec2:DeleteNetworkInterfacePermission",
                                      "ec2:DescribeNetworkInterfaces", "ec2:DescribeVpcs", "ec2:DescribeDhcpOptions",
                                      "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups"]})
    return {"Version": "2012-10-17", "Statement": statements}


def _repository_arn(image_uri: str, region: str, account: str) -> str:
    host, _, path = image_uri.partition("/")
    repository = path.split("@")[0].split(":")[0]
    registry = host.split(".")[0]
    return f"arn:aws:ecr:{region}:{registry if registry.isdigit() else account}:repository/{repository}"


def trust(service: str) -> dict:
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": service},
                                                    "Action": "sts:AssumeRole"}]}


def scheduler_policy(plan: Plan) -> dict:
    partition, region, account = _arn_parts(plan)
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "StartThisPipeline", "Effect": "Allow", "Action": "sagemaker:StartPipelineExecution",
        "Resource": f"arn:{partition}:sagemaker:{region}:{account}:pipeline/{plan.pipeline_name.lower()}"}]}


def policies(plan: Plan) -> dict:
    return {"execution_role": {"trust": trust("sagemaker.amazonaws.com"), "policy": execution_policy(plan)},
            "scheduler_role": {"trust": trust("scheduler.amazonaws.com"), "policy": scheduler_policy(plan)}}
