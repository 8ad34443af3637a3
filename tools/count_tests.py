#!/usr/bin/python3
"""Counts the test cases of one `bazel test` run and prints `N passed, N failed`.

Used by `./dev test` (and so by `.ci/run`). Standard library only.

Which targets ran comes from the Build Event Protocol file of the run
(`--build_event_json_file`): every configured test target, and for each of its
runs/shards the last attempt's status and test.xml. The test cases come from
those test.xml files (gtest or JUnit XML: one <testcase> each):

  - a <testcase> with a <failure> or <error> child is failed;
  - one with a <skipped> child, result="skipped"/"suppressed" or
    status="notrun" (gtest's DISABLED_ tests) is skipped;
  - every other one passed.

A target that did not pass but whose XML shows no failed case (no XML, no
cases, a crash after the last case, a timeout) adds 1 failed. A test target
with no result at all (it failed to build) adds 1 failed. A build failure
(bazel exit code 1) or a run with no test target (exit code 4: "ran no test")
with nothing else failed adds 1 failed, so such a run never ends in
`0 failed`.

The last line printed is exactly `N passed, N failed` (with `, N skipped` when
there are skipped cases). The exit code is 0 only if bazel exited 0, nothing
failed and at least one case passed; otherwise bazel's code, or 1.
"""

import argparse
import json
import os
import sys
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

BAZEL_EXIT_MEANING = {
    0: "success",
    1: "build failed",
    2: "bad command line or environment",
    3: "some tests failed",
    4: "no test targets were found: ran no test",
    8: "interrupted",
    36: "local environment problem",
    37: "internal bazel error",
}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bep", required=True, help="build event JSON file of the run")
    p.add_argument("--bazel-exit-code", type=int, required=True)
    p.add_argument("--testlogs", default="bazel-testlogs",
                   help="bazel-testlogs directory (fallback when the BEP names no test.xml)")
    p.add_argument("--verbose", action="store_true", help="print per-target counts")
    return p.parse_args(argv)


def read_events(path):
    events = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError:
                    # A run killed half-way may leave a truncated last line.
                    continue
    except FileNotFoundError:
        pass
    return events


def uri_to_path(uri):
    if uri.startswith("file://"):
        return urllib.request.url2pathname(urllib.parse.urlparse(uri).path)
    return None


def label_to_testlogs_dir(testlogs, label):
    # //pkg/sub:name -> testlogs/pkg/sub/name
    pkg, _, name = label.lstrip("/").partition(":")
    if label.startswith("@"):
        return None
    return os.path.join(testlogs, pkg, name)


class Target:
    def __init__(self, label):
        self.label = label
        # (run, shard) -> (attempt, status, xml path or None)
        self.results = {}
        self.summary_status = None
        self.build_ok = None  # from targetCompleted
        self.aborted = None  # abort reason, if any


def collect(events):
    targets = {}

    def target(label):
        if label not in targets:
            targets[label] = Target(label)
        return targets[label]

    for ev in events:
        eid = ev.get("id", {})
        if "targetConfigured" in eid:
            conf = ev.get("configured", {})
            kind = conf.get("targetKind", "")
            if "testSize" in conf or kind.endswith("_test rule") or kind.endswith("_test"):
                target(eid["targetConfigured"]["label"])
        elif "testResult" in eid:
            rid = eid["testResult"]
            res = ev.get("testResult", {})
            xml = None
            for out in res.get("testActionOutput", []):
                if out.get("name") == "test.xml":
                    xml = uri_to_path(out.get("uri", ""))
            key = (rid.get("run", 0), rid.get("shard", 0))
            attempt = rid.get("attempt", 0)
            t = target(rid["label"])
            if key not in t.results or t.results[key][0] <= attempt:
                t.results[key] = (attempt, res.get("status", "NO_STATUS"), xml)
        elif "testSummary" in eid:
            label = eid["testSummary"]["label"]
            if label in targets:
                targets[label].summary_status = ev.get("testSummary", {}).get("overallStatus")
        elif "targetCompleted" in eid:
            label = eid["targetCompleted"]["label"]
            if label in targets:
                if "aborted" in ev:
                    targets[label].aborted = ev["aborted"].get("reason", "ABORTED")
                    targets[label].build_ok = False
                else:
                    targets[label].build_ok = bool(ev.get("completed", {}).get("success", False))
    return targets


def count_xml(path):
    """Returns (passed, failed, skipped, failed_names) or None if unreadable."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    passed = failed = skipped = 0
    failed_names = []
    for case in root.iter("testcase"):
        children = {child.tag for child in case}
        name = case.get("name", "?")
        if case.get("classname"):
            name = case.get("classname") + "." + name
        if "failure" in children or "error" in children:
            failed += 1
            failed_names.append(name)
        elif ("skipped" in children or case.get("result") in ("skipped", "suppressed")
              or case.get("status") == "notrun"):
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped, failed_names


def main(argv):
    args = parse_args(argv)
    events = read_events(args.bep)
    targets = collect(events)

    passed = failed = skipped = 0
    problems = []
    for label in sorted(targets):
        t = targets[label]
        tp = tf = ts = 0
        if not t.results:
            if t.summary_status == "NO_STATUS" and t.build_ok:
                ts = 1  # e.g. skipped as incompatible with the platform
            else:
                tf = 1
                why = t.aborted or t.summary_status or ("failed to build" if t.build_ok is False else "no result")
                problems.append("%s: did not run (%s)" % (label, why))
        for (run, shard), (_, status, xml) in sorted(t.results.items()):
            if xml is None or not os.path.exists(xml):
                d = label_to_testlogs_dir(args.testlogs, label)
                if d and len(t.results) == 1:
                    xml = os.path.join(d, "test.xml")
            counted = count_xml(xml) if xml and os.path.exists(xml) else None
            ok = status in ("PASSED", "FLAKY")
            if counted is None:
                if ok:
                    tp += 1
                else:
                    tf += 1
                    problems.append("%s: %s (no readable test.xml)" % (label, status))
                continue
            p, f, s, names = counted
            tp += p
            tf += f
            ts += s
            for n in names:
                problems.append("%s: %s failed" % (label, n))
            if not ok and f == 0:
                tf += 1
                problems.append("%s: %s" % (label, status))
            elif ok and p + f + s == 0:
                tp += 1
        if args.verbose:
            print("  %-50s %d passed, %d failed, %d skipped" % (label, tp, tf, ts))
        passed += tp
        failed += tf
        skipped += ts

    code = args.bazel_exit_code
    if code != 0 and failed == 0:
        problems.append("bazel exited %d (%s)" % (code, BAZEL_EXIT_MEANING.get(code, "error")))
        failed = 1
    if code == 0 and passed == 0 and failed == 0:
        problems.append("no test case ran: ran no test")
        failed = 1

    if problems:
        print("", file=sys.stderr)
        print("Failures:", file=sys.stderr)
        for p in problems:
            print("  " + p, file=sys.stderr)
    sys.stderr.flush()

    line = "%d passed, %d failed" % (passed, failed)
    if skipped:
        line += ", %d skipped" % skipped
    print(line)
    sys.stdout.flush()

    if failed == 0 and code == 0:
        return 0
    return code if code != 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
