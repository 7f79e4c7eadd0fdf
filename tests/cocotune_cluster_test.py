"""`--address`: an exploration on a Ray cluster started beforehand.

Its own module, so that no Ray session of the test process runs alongside.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import cocotune_trials
from cocotune_explore_test import TESTS, ray_importable

ON_CLUSTER = """
import json, sys
sys.path[:0] = {paths!r}
import cocotune_explore_test as t
import pathlib, ray
from cocopie_keras.cocotune import explore
with explore.ray_session(address={address!r}, workers=1):
    nodes = len(ray.nodes())
    result = t.run(pathlib.Path({tmp!r}), t.CONFIGS, t.PARAMS, 0.45)
print(json.dumps({{"nodes": nodes, "best": result["best"]["config"]}}))
"""


def test_address_joins_an_existing_cluster(tmp_path):
    """Trials run on a cluster started beforehand (here `ray start`)."""
    ray_importable()
    # Without what an earlier Ray session of this process left in its environment.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray_cli = os.path.join(os.path.dirname(sys.executable), "ray")
    # Its own temporary folder (short: it holds sockets), so the address file
    # it leaves behind is seen by no other `ray.init` on this machine.
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")
    head = subprocess.Popen([ray_cli, "start", "--head", "--block", f"--port={port}",
                             "--num-cpus=1", "--include-dashboard=false", f"--temp-dir={temp}",
                             "--disable-usage-stats"], start_new_session=True,
                            env=dict(clean, RAY_AUTH_MODE="disabled"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while True:   # the head is up once its GCS port answers
            assert head.poll() is None and time.time() < deadline, "ray start failed"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        script = ON_CLUSTER.format(paths=[TESTS] + sys.path, address=f"127.0.0.1:{port}",
                                   tmp=str(tmp_path))
        driver = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                timeout=300, env=clean)
        assert driver.returncode == 0, driver.stderr[-2000:]
        assert json.loads(driver.stdout.strip().splitlines()[-1]) == {
            "nodes": 1, "best": [0.5, 0.5]}
    finally:
        os.killpg(head.pid, signal.SIGKILL)
        head.wait()
        shutil.rmtree(temp, ignore_errors=True)
    assert cocotune_trials.executions(tmp_path / "count") == ["block_0_0", "block_2_0",
                                                               "block_3_0"]
