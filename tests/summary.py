#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Counts every test case of meson test runs (GoogleTest cases one by one),
# names each failed or skipped one (with the reason), and prints the
# closing line.  Each argument is one run's JUnit file.  The output of each
# failed case is repeated at the end, so that the last lines of a long run
# (all that CI may keep) say why it failed.
import json
import os
import re
import sys
import xml.etree.ElementTree as ET

# meson copies a test's output into the file as is; a colored clang-tidy
# report puts control characters there that XML 1.0 forbids.
NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")

TAP_STATUS = re.compile(r"^(not )?ok (\d+) ")
TAIL = 60


def text(element, tag):
    found = element.find(tag)
    return (found.text or "") if found is not None else ""


def why(suite, case):
    """The output that tells why `case` failed: GoogleTest's failure message,
    the test's own output, or, for a TAP case, the lines the harness printed
    between the case before it and its "not ok" line."""
    lines = (text(case, "failure") or text(case, "error") or text(case, "system-out")).splitlines()
    if lines:
        return lines[-TAIL:]
    lines = text(suite, "system-out").splitlines()
    number = case.get("name").split(" ", 1)[0]
    for end, line in enumerate(lines):
        m = TAP_STATUS.match(line)
        if m and m.group(1) and m.group(2) == number:
            start = end
            while start > 0 and not TAP_STATUS.match(lines[start - 1]):
                start -= 1
            return lines[max(start, end - TAIL):end + 1]
    return lines[-TAIL:]


passed = failed = skipped = 0
reasons = []
for path in sys.argv[1:]:
    if not os.path.exists(path):
        print(f"FAILED  {path}: missing (the run did not happen)")
        failed += 1
        continue
    with open(path, encoding="utf-8", errors="replace") as f:
        root = ET.fromstring(NOT_XML.sub("", f.read()))
    for suite in root.iter("testsuite"):
        for case in suite.iter("testcase"):
            name = f"{suite.get('name')}.{case.get('name')}"
            if case.find("failure") is not None or case.find("error") is not None:
                failed += 1
                print(f"FAILED  {name}")
                reasons.append((name, why(suite, case)))
            elif case.find("skipped") is not None:
                skipped += 1
                reason = case.find("skipped").get("message") or (case.find("skipped").text or "").strip()
                print(f"SKIPPED {name}: {reason}")
            else:
                passed += 1
    # A test whose cases all passed can still fail: valgrind's error exit
    # code, a crash after the last case.  The junit file does not say so;
    # meson's .json log beside it does.
    log = path[:-len(".junit.xml")] + ".json" if path.endswith(".junit.xml") else None
    if log and os.path.exists(log):
        with open(log, encoding="utf-8", errors="replace") as f:
            for line in f:
                t = json.loads(line)
                counted = any(n.startswith(f"vmrd.{t['name']}.") for n, _ in reasons)
                if t["result"] in ("FAIL", "ERROR", "TIMEOUT", "UNEXPECTEDPASS") and not counted:
                    name = f"vmrd.{t['name']}"
                    failed += 1
                    print(f"FAILED  {name}: {t['result']}, exit status {t['returncode']}")
                    reasons.append((name, (t.get("stderr") or t.get("stdout") or "").splitlines()[-TAIL:]))
for name, lines in reasons:
    print(f"--- {name}: its output")
    print("\n".join(lines) if lines else "(none in the log)")
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed or passed == 0 else 0)
