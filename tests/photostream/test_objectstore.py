"""The bucket's lifecycle rules are merged in idempotently, with a stub S3 client."""

from __future__ import annotations

import copy

import pytest
from botocore.exceptions import ClientError

from photostream.objectstore import LIFECYCLE_RULES, STAGING_PREFIX, StoreError, ensure_lifecycle_rules

OPERATORS = {"ID": "keep-logs-a-year", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 365}}


def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Lifecycle")


class LifecycleClient:
    """The two lifecycle calls of a boto3 S3 client, on one bucket's configuration."""

    def __init__(self, rules: list | None = None, refuse_put: ClientError | None = None) -> None:
        self.rules, self.refuse_put, self.puts = rules, refuse_put, 0

    def get_bucket_lifecycle_configuration(self, Bucket: str) -> dict:
        if self.rules is None:
            raise client_error("NoSuchLifecycleConfiguration", 404)
        return {"Rules": copy.deepcopy(self.rules)}

    def put_bucket_lifecycle_configuration(self, Bucket: str, LifecycleConfiguration: dict) -> None:
        if self.refuse_put is not None:
            raise self.refuse_put
        self.puts += 1
        self.rules = copy.deepcopy(LifecycleConfiguration["Rules"])


def test_rules_abort_open_uploads_after_a_day_and_expire_only_staged_uploads():
    abort, expire = LIFECYCLE_RULES
    assert abort["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert "Expiration" not in abort, "the bucket-wide rule never deletes an object"
    assert expire["Filter"] == {"Prefix": STAGING_PREFIX} == {"Prefix": "incoming/"}
    assert expire["Expiration"] == {"Days": 1}


def test_rules_are_added_once_and_other_rules_kept():
    client = LifecycleClient([OPERATORS])
    assert ensure_lifecycle_rules(client, "b") is True
    assert client.rules == [OPERATORS, *LIFECYCLE_RULES]
    assert ensure_lifecycle_rules(client, "b") is False
    assert client.puts == 1


def test_a_bucket_without_configuration_gets_the_rules():
    client = LifecycleClient()
    assert ensure_lifecycle_rules(client, "b") is True
    assert client.rules == list(LIFECYCLE_RULES)


def test_a_changed_rule_of_ours_is_replaced():
    older = {**LIFECYCLE_RULES[0], "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}}
    client = LifecycleClient([older])
    assert ensure_lifecycle_rules(client, "b") is True
    assert client.rules == list(LIFECYCLE_RULES)


@pytest.mark.parametrize(("code", "status"), [("NotImplemented", 501), ("MalformedXML", 400)])
def test_a_server_that_refuses_the_rules_raises_store_error(code, status):
    with pytest.raises(StoreError):
        ensure_lifecycle_rules(LifecycleClient(refuse_put=client_error(code, status)), "b")
