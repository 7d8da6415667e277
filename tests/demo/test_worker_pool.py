"""The demo's worker processes end with the command: stopped by SIGTERM or Ctrl-C, `rewardkit` leaves none running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil
import pytest

# A command whose handler waits on two long jobs in `worker_pool`, through the CLI's `run` as `rewardkit demo` does.
WAIT_ON_WORKERS = """
import time
from rewardkit.cli_options import ArgumentParser, run
from rewardkit.demo.ppo_runs import worker_pool

def wait_on_workers(args):
    with worker_pool(2) as pool:
        jobs = [pool.submit(time.sleep, 600) for _ in range(2)]
        print("started", flush=True)
        return sum(job.result() or 0 for job in jobs)

parser = ArgumentParser()
parser.set_defaults(handler=wait_on_workers)
raise SystemExit(run(parser, []))
"""


# SIGTERM only: Ctrl-C (SIGINT to the whole process group) ends in the same `except BaseException` of worker_pool,
# and each case costs the suite ~10 s of interpreter and torch start-up in three processes.
@pytest.mark.parametrize(("stop", "status", "message"), [
    (lambda command: command.send_signal(signal.SIGTERM), 128 + signal.SIGTERM, "rewardkit: terminated"),
], ids=["SIGTERM"])
def test_a_stopped_command_leaves_no_worker_process_running(stop, status, message):
    command = subprocess.Popen([sys.executable, "-c", WAIT_ON_WORKERS], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    workers = []
    try:
        assert command.stdout.readline() == "started\n"
        workers = psutil.Process(command.pid).children(recursive=True)
        assert len(workers) >= 2
        stop(command)
        _, stderr = command.communicate(timeout=60)  # seconds, unless the machine is very busy
        _, running = psutil.wait_procs(workers, timeout=5)  # the command waited for them: they should be gone now
        assert running == []
        assert command.returncode == status
        assert message in stderr
    finally:
        for process in [command, *workers]:
            if process.poll() is None if process is command else process.is_running():
                process.kill()
