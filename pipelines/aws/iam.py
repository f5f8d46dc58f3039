"""`make iam-policy`: least-privilege policies for the execution role and the scheduler role.

Every S3 location a job can be made to read is granted (the DataSource default, every schedule's override,
the pretrained models), each as a folder (``prefix/*``, never a bare ``prefix*`` that also matches
``prefix-private/``); listing is granted on buckets with an ``s3:prefix`` condition. Jobs write only their
execution's run folder and read the shared code bundles; network interfaces only in the spec's subnets.
"""

from __future__ import annotations

from pipelines.compile.plan import Plan


def _arn_parts(plan: Plan) -> tuple[str, str, str]:
    account = plan.spec.aws.role.split(":")[4]
    return "aws", plan.spec.aws.region, account


def read_uris(plan: Plan) -> list[str]:
    """Every s3:// URI the spec can make a job read: defaults, schedule overrides, pretrained models."""
    uris = {str(plan.parameters[name].default) for name in ("DataSource", "TransformSource") if name in plan.parameters}
    uris |= {str(v) for s in plan.spec.schedules for v in s.parameters.values() if str(v).startswith("s3://")}
    uris |= {m.pretrained_uri for m in plan.models if m.pretrained_uri}
    return sorted(u for u in uris if u.startswith("s3://"))


def _s3_grant(uri: str) -> tuple[str, str, list[str]]:
    """(bucket, object ARN, s3:prefix values) for a folder (``…/``) or a single object."""
    bucket, _, key = uri[5:].partition("/")
    if not key or key.endswith("/"):
        return bucket, f"arn:aws:s3:::{bucket}/{key}*", [key, f"{key}*"] if key else ["*"]
    return bucket, f"arn:aws:s3:::{bucket}/{key}", [key]


def _list_statements(sid: str, grants: list[tuple[str, str, list[str]]]) -> list[dict]:
    prefixes: dict[str, set[str]] = {}
    for bucket, _, values in grants:
        prefixes.setdefault(bucket, set()).update(values)
    return [{"Sid": f"{sid}{i}", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}",
             "Condition": {"StringLike": {"s3:prefix": sorted(values)}}}
            for i, (bucket, values) in enumerate(sorted(prefixes.items()))]


def _s3_statements(plan: Plan) -> list[dict]:
    aws = plan.spec.aws
    base = f"{aws.prefix.strip('/')}/{plan.spec.name}"
    own = [_s3_grant(f"s3://{aws.bucket}/{base}/runs/"), _s3_grant(f"s3://{aws.bucket}/{base}/assets/"),
           _s3_grant(f"s3://{aws.bucket}/{aws.prefix.strip('/')}/code/"),
           _s3_grant(f"s3://{aws.bucket}/{base}/notebooks/")]
    inputs = [_s3_grant(uri) for uri in read_uris(plan)]
    return [
        {"Sid": "RunOutputs", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": own[0][1]},
        {"Sid": "ReadAssetsAndCode", "Effect": "Allow", "Action": "s3:GetObject",
         "Resource": [own[1][1], own[2][1], own[3][1]]},
        {"Sid": "ReadInputs", "Effect": "Allow", "Action": "s3:GetObject", "Resource": sorted({g[1] for g in inputs})},
        *_list_statements("List", own + inputs),
    ]


def _job_statements(plan: Plan, jobs: str) -> list[dict]:
    job_arns = [f"{jobs}:processing-job/*", f"{jobs}:training-job/*", f"{jobs}:hyper-parameter-tuning-job/*",
                f"{jobs}:transform-job/*", f"{jobs}:model/*"]
    aws = plan.spec.aws
    return [
        {"Sid": "CreateTaggedJobs", "Effect": "Allow",
         "Action": ["sagemaker:CreateProcessingJob", "sagemaker:CreateTrainingJob",
                    "sagemaker:CreateHyperParameterTuningJob", "sagemaker:CreateTransformJob", "sagemaker:CreateModel",
                    "sagemaker:AddTags"],
         "Resource": job_arns, "Condition": {"StringEquals": {"aws:RequestTag/smpipe:experiment": plan.spec.name}}},
        {"Sid": "WatchJobs", "Effect": "Allow",
         "Action": ["sagemaker:DescribeProcessingJob", "sagemaker:DescribeTrainingJob",
                    "sagemaker:DescribeHyperParameterTuningJob", "sagemaker:DescribeTransformJob",
                    "sagemaker:DescribeModel", "sagemaker:StopProcessingJob", "sagemaker:StopTrainingJob",
                    "sagemaker:StopHyperParameterTuningJob", "sagemaker:StopTransformJob", "sagemaker:ListTags",
                    # what the Pipelines service calls to fill a TuningStep's properties
                    "sagemaker:ListTrainingJobsForHyperParameterTuningJob"],
         "Resource": job_arns, "Condition": {"StringEquals": {"aws:ResourceTag/smpipe:experiment": plan.spec.name}}},
        {"Sid": "PassOwnRole", "Effect": "Allow", "Action": "iam:PassRole", "Resource": aws.role,
         "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}},
    ]


def _platform_statements(plan: Plan, partition: str, region: str, account: str) -> list[dict]:
    aws = plan.spec.aws
    return [
        {"Sid": "Image", "Effect": "Allow", "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                                                        "ecr:BatchCheckLayerAvailability"],
         "Resource": _repository_arn(aws.image_uri, region, account)},
        {"Sid": "ImageToken", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        {"Sid": "Logs", "Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream",
                                                       "logs:PutLogEvents", "logs:DescribeLogStreams"],
         "Resource": f"arn:{partition}:logs:{region}:{account}:log-group:/aws/sagemaker/*"},
        {"Sid": "Metrics", "Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*",
         "Condition": {"StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/*", "aws/sagemaker/*"]}}},
    ]


def _optional_statements(plan: Plan, partition: str, region: str, account: str, jobs: str) -> list[dict]:
    aws, out = plan.spec.aws, []
    if plan.spec.register.group and plan.spec.steps.register:
        group = plan.spec.register.group
        out.append({"Sid": "Registry", "Effect": "Allow",
                    "Action": ["sagemaker:CreateModelPackage", "sagemaker:DescribeModelPackage",
                               "sagemaker:DescribeModelPackageGroup", "sagemaker:CreateModelPackageGroup",
                               "sagemaker:AddTags"],
                    "Resource": [f"{jobs}:model-package-group/{group}", f"{jobs}:model-package/{group}/*"]})
    if aws.kms_key:
        out.append({"Sid": "Kms", "Effect": "Allow", "Resource": aws.kms_key,
                    "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*", "kms:DescribeKey"]})
        out.append({"Sid": "KmsGrantsForSageMaker", "Effect": "Allow", "Resource": aws.kms_key,
                    "Action": "kms:CreateGrant", "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}})
    if plan.spec.tracking.wandb.api_key_secret and plan.spec.tracking.wandb.mode == "online":  # offline reads none
        out.append({"Sid": "WandbKey", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
                    "Resource": _secret_arns(plan.spec.tracking.wandb.api_key_secret, partition, region, account)})
    mlflow = plan.spec.tracking.mlflow
    if mlflow is not None and mlflow.tracking_server_arn:  # SageMaker's MLflow signs requests with the job's role
        out.append({"Sid": "Mlflow", "Effect": "Allow", "Action": "sagemaker-mlflow:*",
                    "Resource": mlflow.tracking_server_arn})
    if aws.subnets:
        out += _vpc_statements(plan, partition, region, account)
    return out


def _secret_arns(secret: str, partition: str, region: str, account: str) -> list[str]:
    """A secret's ARN ends in a random 6-character suffix: granted for a name (``name-??????``) and for an
    ARN given with or without it."""
    base = secret if secret.startswith("arn:") else f"arn:{partition}:secretsmanager:{region}:{account}:secret:{secret}"
    return sorted({base, f"{base}-??????"}) if secret.startswith("arn:") else [f"{base}-??????"]


def _vpc_statements(plan: Plan, partition: str, region: str, account: str) -> list[dict]:
    aws, ec2 = plan.spec.aws, f"arn:{partition}:ec2:{region}:{account}"
    subnets = [f"{ec2}:subnet/{s}" for s in aws.subnets]
    return [
        {"Sid": "VpcDescribe", "Effect": "Allow", "Resource": "*",
         "Action": ["ec2:DescribeNetworkInterfaces", "ec2:DescribeVpcs", "ec2:DescribeDhcpOptions",
                    "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups"]},
        {"Sid": "VpcInterfacesInOurSubnets", "Effect": "Allow", "Resource": f"{ec2}:network-interface/*",
         "Action": ["ec2:CreateNetworkInterface", "ec2:CreateNetworkInterfacePermission",
                    "ec2:DeleteNetworkInterface", "ec2:DeleteNetworkInterfacePermission"],
         "Condition": {"ArnEquals": {"ec2:Subnet": subnets}}},
        {"Sid": "VpcPlacement", "Effect": "Allow", "Action": "ec2:CreateNetworkInterface",
         "Resource": subnets + [f"{ec2}:security-group/{g}" for g in aws.security_groups]},
    ]


def execution_policy(plan: Plan) -> dict:
    partition, region, account = _arn_parts(plan)
    jobs = f"arn:{partition}:sagemaker:{region}:{account}"
    statements = (_s3_statements(plan) + _job_statements(plan, jobs) + _platform_statements(plan, partition, region, account)
                  + _optional_statements(plan, partition, region, account, jobs))
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
