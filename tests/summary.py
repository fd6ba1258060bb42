#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Counts every test case of a meson test run (GoogleTest cases one by one),
# names each skipped one with its reason, and prints the closing line.
import sys
import xml.etree.ElementTree as ET

root = ET.parse(sys.argv[1]).getroot()
passed = failed = skipped = 0
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
