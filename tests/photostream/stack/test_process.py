import os
import signal
import socket
import sys

import pytest

from photostream.stack.process import ManagedProcess, StackError, port_bindable, port_open


def test_port_checks_see_a_listener():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert port_open("127.0.0.1", port)
        assert not port_bindable("127.0.0.1", port)
    assert not port_open("127.0.0.1", port)
    assert port_bindable("127.0.0.1", port)


def _process(tmp_path, marker="photostream-test-sleeper"):
    return ManagedProcess(
        name="sleeper", run_dir=tmp_path / "run", log_file=tmp_path / "sleeper.log", marker=marker, stop_timeout=5
    )


def test_start_find_and_stop(tmp_path):
    process = _process(tmp_path)
    pid = process.start(
        [sys.executable, "-c", "import time, sys; print('up', flush=True); time.sleep(60)", "photostream-test-sleeper"],
        cwd=tmp_path,
    )
    assert process.pid() == pid
    assert process.stop() is True
    assert process.pid() is None
    assert not process.pidfile.exists()
    assert process.stop() is False


def test_a_process_is_found_right_after_it_starts_while_it_execs(tmp_path):
    # The starting shell forks, then execs the server; for a moment in between the process has no command line.
    # Read then, it must not look like a stranger (which would also drop its pidfile). About 1 start in 70
    # landed in that moment here, so 100 starts would very likely catch a regression.
    process = _process(tmp_path)
    for _ in range(100):
        pid = process.start([sys.executable, "-c", "import time; time.sleep(30)", "photostream-test-sleeper"], tmp_path)
        try:
            assert process.pid() == pid
        finally:
            os.kill(pid, signal.SIGKILL)
            process.pidfile.unlink(missing_ok=True)


def test_a_reused_pid_is_not_ours(tmp_path):
    # The pidfile names a live process (this one) that is not the command we started.
    process = _process(tmp_path)
    process.run_dir.mkdir(parents=True)
    process.pidfile.write_text(f"{__import__('os').getpid()}\n")
    assert process.pid() is None
    assert process.stop() is False
    assert not process.pidfile.exists()


def test_exit_during_start_up_is_reported_with_the_log(tmp_path):
    process = _process(tmp_path)
    process.start(
        [sys.executable, "-c", "import sys; print('bad config: photostream-test-sleeper'); sys.exit(1)"], cwd=tmp_path
    )
    with pytest.raises(StackError, match="exited during start-up") as failure:
        process.wait_ready(lambda: False, timeout=30)
    assert "bad config" in str(failure.value)


def test_no_answer_in_time_is_an_error(tmp_path):
    process = _process(tmp_path)
    process.start([sys.executable, "-c", "import time; time.sleep(60)", "photostream-test-sleeper"], cwd=tmp_path)
    try:
        with pytest.raises(StackError, match="did not answer"):
            process.wait_ready(lambda: False, timeout=0.5)
    finally:
        process.stop()
