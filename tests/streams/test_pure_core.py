"""The image work and the ordering window are plain libraries: importing them pulls in no Kafka, S3, HTTP or Faust."""

import subprocess
import sys

import pytest

FORBIDDEN = ("faust", "aiokafka", "confluent_kafka", "boto3", "botocore", "aiohttp")


@pytest.mark.parametrize("module", ["streams.imaging", "streams.processing", "streams.duplicates", "streams.ordered"])
def test_core_module_imports_no_infrastructure(module):
    probe = f"import sys, {module}; print(','.join(m for m in {FORBIDDEN!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == ""
