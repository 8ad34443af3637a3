#!/usr/bin/python3
"""Starts a small real Conductor cluster on loopback for tests (stdlib only).

Storage nodes first, then the conductor (and, optionally, queue workers), each
on 127.0.0.1:0; the bound address is read back from the "listening on
HOST:PORT" line each binary prints on stdout. Every process's stdout and stderr
go to WORKDIR/logs/NAME.log.

As a library (Python tests):

    with LocalCluster(workdir) as cluster:
        channel = grpc.insecure_channel(cluster.conductor_addr)
        ...
    # leaving the block stops every process with SIGTERM and raises
    # ClusterError unless each one exited 0 within the grace period.

As a launcher (shell tests):

    local_cluster.py [--storage-nodes N] [--workers M] [--workdir DIR] -- CMD ARGS...

runs CMD with CONDUCTOR_ADDR (HOST:PORT) and STORAGE_ADDRS (comma-separated)
in its environment, then stops the cluster. The exit code is CMD's when it
failed, else 1 if a process did not shut down cleanly, else 0.

Binaries are found, in order, through STORAGE_NODE_BIN / CONDUCTOR_BIN /
QUEUE_WORKER_BIN, Bazel's runfiles (RUNFILES_DIR or TEST_SRCDIR, workspace
"conductor"), or bazel-bin/ of the repository this file sits in.
"""

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

WORKSPACE = "conductor"
BINARIES = {
    "storage_node": ("STORAGE_NODE_BIN", "storage_node/storage_node"),
    "conductor": ("CONDUCTOR_BIN", "conductor/conductor"),
    "queue_worker": ("QUEUE_WORKER_BIN", "queue_worker/queue_worker"),
}
LISTENING_RE = re.compile(r"listening on (\S+:\d+)")
START_TIMEOUT_S = float(os.environ.get("LOCAL_CLUSTER_START_TIMEOUT_S", "20"))
STOP_TIMEOUT_S = float(os.environ.get("LOCAL_CLUSTER_STOP_TIMEOUT_S", "10"))


class ClusterError(Exception):
    pass


def find_binary(kind):
    env_var, rel = BINARIES[kind]
    candidates = []
    if os.environ.get(env_var):
        candidates.append(os.environ[env_var])
    for var in ("RUNFILES_DIR", "TEST_SRCDIR"):
        root = os.environ.get(var)
        if root:
            candidates.append(os.path.join(root, WORKSPACE, rel))
    here = os.path.dirname(os.path.abspath(__file__))
    candidates.append(os.path.join(here, "..", "bazel-bin", rel))
    for c in candidates:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    raise ClusterError("%s binary not found (looked in: %s); build it or set %s"
                       % (kind, ", ".join(candidates), env_var))


def log_tail(path, lines=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(no log)"


class Process:
    def __init__(self, name, argv, log_path):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.address = None
        self.returncode = None
        self._log = open(log_path, "wb")
        self.popen = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, close_fds=True)

    def wait_listening(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            try:
                with open(self.log_path, errors="replace") as f:
                    m = LISTENING_RE.search(f.read())
            except OSError:
                m = None
            if m:
                addr = m.group(1)
                host, _, port = addr.rpartition(":")
                if host in ("0.0.0.0", "[::]", "::", ""):
                    addr = "127.0.0.1:" + port
                self.address = addr
                return addr
            if self.popen.poll() is not None:
                raise ClusterError("%s exited with code %s before it was serving; log:\n%s"
                                   % (self.name, self.popen.returncode, log_tail(self.log_path)))
            if time.monotonic() > deadline:
                raise ClusterError("%s did not print 'listening on' within %.0fs; log:\n%s"
                                   % (self.name, timeout, log_tail(self.log_path)))
            time.sleep(0.05)

    def stop(self, timeout):
        """SIGTERM, wait; SIGKILL after timeout. Returns an error string or None."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
                self._log.close()
                return "%s did not exit within %.0fs of SIGTERM (killed)" % (self.name, timeout)
            self._log.close()
            self.returncode = self.popen.returncode
            if self.returncode != 0:
                return "%s exited with code %d after SIGTERM; log:\n%s" % (
                    self.name, self.returncode, log_tail(self.log_path))
            return None
        self._log.close()
        self.returncode = self.popen.returncode
        return "%s had already exited (code %d) before the end of the test; log:\n%s" % (
            self.name, self.returncode, log_tail(self.log_path))


class LocalCluster:
    def __init__(self, workdir=None, storage_nodes=2, workers=0):
        if workdir is None:
            workdir = tempfile.mkdtemp(prefix="cluster.", dir=os.environ.get("TEST_TMPDIR"))
        self.workdir = os.path.abspath(workdir)
        self.num_storage_nodes = storage_nodes
        self.num_workers = workers
        self.processes = []  # in start order
        self.storage_addrs = []
        self.conductor_addr = None
        self.worker_addrs = []

    def _start(self, name, argv):
        os.makedirs(os.path.join(self.workdir, "logs"), exist_ok=True)
        p = Process(name, argv, os.path.join(self.workdir, "logs", name + ".log"))
        self.processes.append(p)
        return p.wait_listening(START_TIMEOUT_S)

    def start(self):
        try:
            storage_bin = find_binary("storage_node")
            conductor_bin = find_binary("conductor")
            worker_bin = find_binary("queue_worker") if self.num_workers else None
            for i in range(1, self.num_storage_nodes + 1):
                node_id = "n%d" % i
                data_dir = os.path.join(self.workdir, node_id)
                os.makedirs(data_dir, exist_ok=True)
                self.storage_addrs.append(self._start(node_id, [
                    storage_bin, "--listen=127.0.0.1:0", "--data_dir=" + data_dir,
                    "--node_id=" + node_id]))
            data_dir = os.path.join(self.workdir, "conductor")
            os.makedirs(data_dir, exist_ok=True)
            self.conductor_addr = self._start("conductor", [
                conductor_bin, "--listen=127.0.0.1:0", "--data_dir=" + data_dir,
                "--storage_nodes=" + ",".join(self.storage_addrs)])
            for i in range(1, self.num_workers + 1):
                self.worker_addrs.append(self._start("queue-worker-%d" % i, [
                    worker_bin, "--conductor=" + self.conductor_addr,
                    "--listen=127.0.0.1:0"]))
        except BaseException:
            self.stop(check=False)
            raise
        return self

    def stop(self, check=True):
        """Stops workers, then the conductor, then storage nodes.

        With check, raises ClusterError unless every process exited 0.
        """
        errors = []
        for p in reversed(self.processes):
            err = p.stop(STOP_TIMEOUT_S)
            if err:
                errors.append(err)
        self.processes = []
        if check and errors:
            raise ClusterError("unclean shutdown:\n" + "\n".join(errors))
        return errors

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        # Do not hide the body's exception behind a shutdown error.
        self.stop(check=exc_type is None)
        return False


def main(argv):
    p = argparse.ArgumentParser(description="Run CMD against a local Conductor cluster.")
    p.add_argument("--storage-nodes", type=int, default=2)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--workdir", default=None)
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        p.error("a command to run is required after --")

    cluster = LocalCluster(args.workdir, args.storage_nodes, args.workers)
    try:
        cluster.start()
    except ClusterError as e:
        print("local_cluster: " + str(e), file=sys.stderr)
        return 1
    print("local_cluster: conductor at %s, storage nodes %s (logs in %s/logs)"
          % (cluster.conductor_addr, ",".join(cluster.storage_addrs), cluster.workdir),
          file=sys.stderr)
    env = dict(os.environ)
    env["CONDUCTOR_ADDR"] = cluster.conductor_addr
    env["STORAGE_ADDRS"] = ",".join(cluster.storage_addrs)
    try:
        rc = subprocess.call(cmd, env=env)
    finally:
        errors = cluster.stop(check=False)
    for e in errors:
        print("local_cluster: " + e, file=sys.stderr)
    if rc != 0:
        return rc
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
