#!/usr/bin/python3
"""Any language can call Conductor: Python stubs generated from the public protos.

Runs with Debian's /usr/bin/python3 (grpcio 1.51, protobuf 4.21). At test time
it generates Python code from proto/conductor/v1/*.proto (and google/rpc's
status.proto / error_details.proto, to read error details) with protoc and
grpc_python_plugin into $TEST_TMPDIR, starts 2 storage nodes and a conductor
(tests/local_cluster.py), and calls conductor.v1.TableOps through the stubs.

Bazel: //tests:python_client_test (python_client_test.sh runs this file).
By hand, from the repo root after `bazel build //conductor //storage_node`:
    /usr/bin/python3 tests/python_client_test.py
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import local_cluster  # noqa: E402

WORKSPACE = "conductor"
PROTOC = shutil.which("protoc", path="/usr/bin:/bin") or "protoc"
GRPC_PYTHON_PLUGIN = "/usr/bin/grpc_python_plugin"
GOGO_GOOGLEAPIS = "/usr/share/gocode/src/github.com/gogo/googleapis"


def runfiles_roots():
    roots = []
    for var in ("RUNFILES_DIR", "TEST_SRCDIR"):
        if os.environ.get(var):
            roots.append(os.environ[var])
    return roots


def find_proto_root():
    for root in runfiles_roots():
        d = os.path.join(root, WORKSPACE, "proto")
        if os.path.isfile(os.path.join(d, "conductor/v1/table_ops.proto")):
            return d
    d = os.path.join(HERE, "..", "proto")
    if os.path.isfile(os.path.join(d, "conductor/v1/table_ops.proto")):
        return os.path.abspath(d)
    raise RuntimeError("proto/conductor/v1/table_ops.proto not found")


def find_googleapis_root():
    candidates = []
    for root in runfiles_roots():
        candidates += [os.path.join(root, "system", "googleapis"),
                       os.path.join(root, WORKSPACE, "external", "system", "googleapis")]
    candidates.append(GOGO_GOOGLEAPIS)
    for d in candidates:
        if os.path.isfile(os.path.join(d, "google/rpc/status.proto")):
            return d
    raise RuntimeError("google/rpc/status.proto not found (install golang-github-gogo-googleapis-dev)")


def generate_stubs(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    proto_root = find_proto_root()
    protos = sorted("conductor/v1/" + f for f in os.listdir(os.path.join(proto_root, "conductor/v1"))
                    if f.endswith(".proto"))
    subprocess.run([PROTOC, "-I" + proto_root, "--python_out=" + out_dir,
                    "--grpc_python_out=" + out_dir,
                    "--plugin=protoc-gen-grpc_python=" + GRPC_PYTHON_PLUGIN] + protos, check=True)
    subprocess.run([PROTOC, "-I" + find_googleapis_root(), "-I/usr/include",
                    "--python_out=" + out_dir,
                    "google/rpc/status.proto", "google/rpc/error_details.proto"], check=True)


TMP = os.environ.get("TEST_TMPDIR") or tempfile.mkdtemp(prefix="python_client_test.")
GEN_DIR = os.path.join(TMP, "gen")
generate_stubs(GEN_DIR)
sys.path.insert(0, GEN_DIR)

import grpc  # noqa: E402
from conductor.v1 import table_ops_pb2 as pb  # noqa: E402
from conductor.v1 import table_ops_pb2_grpc as pb_grpc  # noqa: E402
from google.rpc import error_details_pb2, status_pb2  # noqa: E402

RPC_TIMEOUT_S = 30


def value_of(v):
    """A conductor.v1.Value as a Python value."""
    kind = v.WhichOneof("kind")
    return None if kind in (None, "null_value") else getattr(v, kind)


def result_set(resp, name):
    for rs in resp.result_sets:
        if rs.name == name:
            return rs
    raise AssertionError("no result set named %r in %r" % (name, [rs.name for rs in resp.result_sets]))


def column(rs, col):
    i = list(rs.columns).index(col)
    return [value_of(row.values[i]) for row in rs.rows]


def error_info(rpc_error):
    """The google.rpc.ErrorInfo carried in grpc-status-details-bin, or None."""
    for key, value in rpc_error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Is(info.DESCRIPTOR):
                    detail.Unpack(info)
                    return status, info
            return status, None
    return None, None


class PythonClientTest(unittest.TestCase):
    """The cases run in name order and build on each other (create → drop)."""

    @classmethod
    def setUpClass(cls):
        cls.cluster = local_cluster.LocalCluster(os.path.join(TMP, "cluster"), storage_nodes=2)
        cls.cluster.start()
        cls.channel = grpc.insecure_channel(cls.cluster.conductor_addr)
        grpc.channel_ready_future(cls.channel).result(timeout=RPC_TIMEOUT_S)
        cls.stub = pb_grpc.TableOpsStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        # SIGTERM to every process; fails unless each exits 0.
        cls.cluster.stop(check=True)

    def test_1_create_table(self):
        resp = self.stub.CreateTable(pb.CreateTableRequest(
            sql="CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT) /* SHARDS=4 */"),
            timeout=RPC_TIMEOUT_S)
        self.assertTrue(resp.created)
        self.assertEqual(resp.table.name, "users")
        self.assertEqual(resp.table.num_shards, 4)
        self.assertEqual(list(resp.table.primary_key), ["id"])
        self.assertEqual(resp.table.shard_key, "id")

    def test_2_show_tables(self):
        resp = self.stub.Execute(pb.ExecuteRequest(sql="SHOW TABLES"), timeout=RPC_TIMEOUT_S)
        tables = result_set(resp, "TABLES")
        self.assertIn("name", list(tables.columns))
        self.assertIn("users", column(tables, "name"))

    def test_3_describe_table(self):
        resp = self.stub.DescribeTable(pb.DescribeTableRequest(table="users"),
                                       timeout=RPC_TIMEOUT_S)
        self.assertEqual(resp.table.name, "users")
        self.assertEqual(resp.table.num_shards, 4)
        self.assertEqual(len(resp.shards), 4)
        self.assertEqual([c.name for c in resp.columns], ["id", "name"])
        self.assertEqual([c.primary_key for c in resp.columns], [True, False])

    def test_4_describe_unknown_table_is_not_found(self):
        with self.assertRaises(grpc.RpcError) as ctx:
            self.stub.Execute(pb.ExecuteRequest(sql="DESCRIBE no_such_table"),
                              timeout=RPC_TIMEOUT_S)
        err = ctx.exception
        self.assertEqual(err.code(), grpc.StatusCode.NOT_FOUND, err.details())
        status, info = error_info(err)
        self.assertIsNotNone(status, "no grpc-status-details-bin trailer")
        self.assertEqual(status.code, grpc.StatusCode.NOT_FOUND.value[0])
        self.assertIsNotNone(info, "no google.rpc.ErrorInfo in the status details")
        self.assertEqual(info.reason, "TABLE_NOT_FOUND")
        self.assertEqual(info.domain, "conductor")

    def test_5_drop_table(self):
        resp = self.stub.DropTable(pb.DropTableRequest(table="users"), timeout=RPC_TIMEOUT_S)
        self.assertTrue(resp.dropped)
        resp = self.stub.Execute(pb.ExecuteRequest(sql="SHOW TABLES"), timeout=RPC_TIMEOUT_S)
        self.assertNotIn("users", column(result_set(resp, "TABLES"), "name"))


class JUnitResult(unittest.TextTestResult):
    """Also records every case, to write JUnit XML for Bazel's test.xml."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cases = []  # (classname, name, seconds, kind, message, text)
        self._started = {}

    def startTest(self, test):
        self._started[test.id()] = time.monotonic()
        super().startTest(test)

    def _record(self, test, kind, message="", text=""):
        start = self._started.pop(test.id(), time.monotonic())
        if isinstance(test, unittest.TestCase):
            classname, _, name = test.id().rpartition(".")
        else:  # setUpClass / tearDownClass: "tearDownClass (__main__.PythonClientTest)"
            classname, name = "fixture", test.id().split(" ")[0]
        self.cases.append((classname, name, time.monotonic() - start, kind, message, text))

    @staticmethod
    def _message(err):
        lines = str(err[1]).strip().splitlines()
        return "%s: %s" % (err[0].__name__, lines[0] if lines else "")

    def addSuccess(self, test):
        super().addSuccess(test)
        self._record(test, "pass")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._record(test, "failure", self._message(err), self._exc_info_to_string(err, test))

    def addError(self, test, err):
        super().addError(test, err)
        # Errors in setUpClass/tearDownClass arrive with a placeholder "test".
        self._record(test, "error", self._message(err), self._exc_info_to_string(err, test))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._record(test, "skipped", reason)


def write_junit_xml(path, result):
    suite = ET.Element("testsuite", name="python_client_test", tests=str(len(result.cases)),
                       failures=str(sum(c[3] == "failure" for c in result.cases)),
                       errors=str(sum(c[3] == "error" for c in result.cases)))
    for classname, name, seconds, kind, message, text in result.cases:
        case = ET.SubElement(suite, "testcase", classname=classname, name=name,
                             time="%.3f" % seconds)
        if kind != "pass":
            child = ET.SubElement(case, kind, message=message or kind)
            child.text = text
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def main():
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(PythonClientTest)
    runner = unittest.TextTestRunner(verbosity=2, resultclass=JUnitResult, stream=sys.stderr)
    result = runner.run(suite)
    if os.environ.get("XML_OUTPUT_FILE"):
        write_junit_xml(os.environ["XML_OUTPUT_FILE"], result)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
