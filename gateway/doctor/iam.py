"""The IAM permissions the doctor's API checks need, as a ready-to-paste policy.

The reads are scoped to the one user pool. DescribeUserPoolDomain names only a domain, not a
pool, and IAM offers no resource-level permission for it: its statement needs `"Resource": "*"`.
"""

from __future__ import annotations

import json

POOL_ACTIONS = ("cognito-idp:DescribeUserPool", "cognito-idp:DescribeUserPoolClient",
                "cognito-idp:ListUserPoolClients")
DOMAIN_ACTIONS = ("cognito-idp:DescribeUserPoolDomain",)
DOCTOR_ACTIONS = POOL_ACTIONS + DOMAIN_ACTIONS


def partition(region: str) -> str:
    """The ARN partition of a region: aws, aws-cn or aws-us-gov."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def pool_arn(region: str, user_pool_id: str) -> str:
    """The user pool's ARN, with any account (`*`): the pool id is unique per region anyway."""
    return f"arn:{partition(region)}:cognito-idp:{region}:*:userpool/{user_pool_id}"


def doctor_policy(region: str, user_pool_id: str) -> str:
    """An identity-based IAM policy (JSON) granting exactly the doctor's reads of this pool."""
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "CognitoGatewayDoctorReadAppClient", "Effect": "Allow",
             "Action": list(POOL_ACTIONS), "Resource": pool_arn(region, user_pool_id)},
            {"Sid": "CognitoGatewayDoctorReadDomain", "Effect": "Allow",
             "Action": list(DOMAIN_ACTIONS), "Resource": "*"},
        ],
    }
    return json.dumps(policy, indent=2)
