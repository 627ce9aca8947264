"""The local S3 server stores and returns objects through boto3, and only for our key."""

from __future__ import annotations

import hashlib
import os
import signal

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from photostream.clients import s3_client
from photostream.config import S3Settings
from photostream.objectstore import LIFECYCLE_RULES, ensure_lifecycle_rules

pytestmark = pytest.mark.integration


def test_put_get_list_delete(local_stack, unique_name):
    client = s3_client(local_stack.s3)
    bucket = local_stack.s3.bucket
    key = f"tests/{unique_name('object')}.bin"
    body = os.urandom(256 * 1024)

    client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/octet-stream")
    fetched = client.get_object(Bucket=bucket, Key=key)
    assert hashlib.sha256(fetched["Body"].read()).digest() == hashlib.sha256(body).digest()
    assert fetched["ContentType"] == "application/octet-stream"

    listed = client.list_objects_v2(Bucket=bucket, Prefix=key)
    assert [item["Key"] for item in listed["Contents"]] == [key]

    client.delete_object(Bucket=bucket, Key=key)
    with pytest.raises(ClientError) as missing:
        client.head_object(Bucket=bucket, Key=key)
    assert missing.value.response["Error"]["Code"] in {"404", "NoSuchKey"}


def test_unknown_credentials_are_refused(local_stack):
    stranger = s3_client(
        S3Settings(endpoint_url=local_stack.s3.endpoint_url, access_key_id="stranger", secret_access_key="nope")
    )
    with pytest.raises(ClientError) as refused:
        stranger.list_objects_v2(Bucket=local_stack.s3.bucket)
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_the_bucket_has_the_lifecycle_rules(local_stack):
    # `stack up` (the session fixture) set them; SeaweedFS stores and reports them.
    client = s3_client(local_stack.s3)
    rules = client.get_bucket_lifecycle_configuration(Bucket=local_stack.s3.bucket)["Rules"]
    for rule in LIFECYCLE_RULES:
        assert rule in rules
    abort = next(rule for rule in rules if "AbortIncompleteMultipartUpload" in rule)
    assert abort["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}


def test_lifecycle_rules_are_set_once_beside_other_rules(local_stack, unique_name):
    client = s3_client(local_stack.s3)
    bucket = unique_name("lifecycle")
    client.create_bucket(Bucket=bucket)
    try:
        other = {"ID": "keep-logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 365}}
        client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [other]})
        assert ensure_lifecycle_rules(client, bucket) is True
        assert ensure_lifecycle_rules(client, bucket) is False, "a second run changes nothing"
        rules = client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
        assert sorted(rule["ID"] for rule in rules) == sorted(["keep-logs", *(r["ID"] for r in LIFECYCLE_RULES)])
    finally:
        client.delete_bucket(Bucket=bucket)


def test_objects_stored_before_a_restart_are_readable_once_the_stack_is_up(local_stack, unique_name):
    # Right after a restart SeaweedFS lists keys before it can read them; `stack up` must not return before it
    # can (`make run` read its saved API key at once and failed with a 500). No retries here: they would hide it.
    settings = local_stack.s3
    client = boto3.client(
        "s3",
        endpoint_url=settings.endpoint_url,
        aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=settings.secret_access_key.get_secret_value(),
        region_name=settings.region,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, s3={"addressing_style": "path"}),
    )
    key = f"{unique_name('restart')}/kept"
    client.put_object(Bucket=settings.bucket, Key=key, Body=b"stored before the restart")
    try:
        for crash in (False, True, False, True):  # a race (one restart in four lost it): once could be lucky
            if crash:
                (pid,) = [status.pid for status in local_stack.stack.status() if status.name == "s3"]
                os.kill(pid, signal.SIGKILL)
            else:
                local_stack.stack.down({"s3"})
            local_stack.stack.up()
            assert client.get_object(Bucket=settings.bucket, Key=key)["Body"].read() == b"stored before the restart"
    finally:
        local_stack.stack.up()
        client.delete_object(Bucket=settings.bucket, Key=key)
