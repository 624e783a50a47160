"""Adapters to AWS: CloudFormation and SAM, Amplify, CloudWatch metrics, the builds in S3."""
