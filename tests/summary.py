#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Counts every test case of meson test runs (GoogleTest cases one by one),
# names each failed or skipped one (with the reason), and prints the
# closing line.  Each argument is one run's JUnit file.
import os
import re
import sys
import xml.etree.ElementTree as ET

# meson copies a test's output into the file as is; a colored clang-tidy
# report puts control characters there that XML 1.0 forbids.
NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")

passed = failed = skipped = 0
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
            elif case.find("skipped") is not None:
                skipped += 1
                reason = case.find("skipped").get("message") or (case.find("skipped").text or "").strip()
                print(f"SKIPPED {name}: {reason}")
            else:
                passed += 1
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed or passed == 0 else 0)
