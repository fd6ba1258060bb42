#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# The man pages match the code: man reads them without a warning, every long
# option and vmrdctl command in --help is documented, and every config key
# the parsers accept is documented in the config's page.
#
# Usage: man_pages.py SRCDIR VMRD VMRDCTL VMRD-BROKER VMRD-PLUGIN-CHECK PAGE...
#
# A documented option, command or key is a bold word in the heading of an
# entry of the page (*--config*, *backend.call_timeout*).  The keys come from the parsers' own lists of
# allowed keys (YamlReader::onlyKeys and the presets' key lists), which are
# what makes any other key an error, so a key added there fails this test
# until its page names it.  Each list must appear under one prefix: the keys
# of one section (or of one list item, *vms[].qmp*) in the same place.
# Keys the parsers read outside such a list (policy.preset) need only be
# named somewhere in the page.
import os
import re
import shutil
import subprocess
import sys

# The config pages and the parser sources whose keys they must document.
CONFIG_SOURCES = {
    'vmrd.yaml.5': ['core/config.cpp', 'core/policy_params.cpp', 'util/yaml_reader.h'],
    'vmrd-broker.yaml.5': ['plugins/virtio-mem/broker/broker_config.cpp', 'util/yaml_reader.h'],
}

failures = []


def fail(message):
    failures.append(message)
    print('FAIL: ' + message)


def defined_terms(page):
    """The bold words of each entry's heading line: scdoc writes an entry
    (a line, then its tab-indented text) as that line followed by .RS 4.
    A word named only in running text does not count."""
    with open(page, encoding='utf-8') as f:
        lines = f.read().replace('\\&', '').split('\n')
    terms = set()
    for line, following in zip(lines, lines[1:]):
        if following == '.RS 4':
            terms.update(re.findall(r'\\fB(.*?)\\fR', line))
    return terms


def help_text(program):
    return subprocess.run([program, '--help'], check=True, capture_output=True, text=True).stdout


def long_options(text):
    # Boost.Program_options prints "  -c [ --config ] arg" or "  --dry-run".
    return re.findall(r'^  (?:-\w \[ )?--([a-z0-9][a-z0-9-]*)', text, re.M)


def vmrdctl_commands(text):
    section = text.split('Commands:\n', 1)[1].split('\n\n', 1)[0]
    return re.findall(r'^  ([a-z]+)', section, re.M)


def key_groups(sources):
    """The parsers' lists of allowed keys, and every key they read by name."""
    groups, read = [], set()
    for path in sources:
        with open(path, encoding='utf-8') as f:
            code = f.read()
        for body in re.findall(r'(?:onlyKeys\([^{;]*|\bkeys = )\{([^}]*)\}', code):
            groups.append(re.findall(r'"([a-z_]+)"', body))
        read.update(re.findall(r'\w\["([a-z_]+)"\]', code))
    return [g for g in groups if g], read


def check_group(name, terms, keys):
    # Prefixes under which the page documents the first key.
    prefixes = {t[:-len(keys[0])] for t in terms if t.endswith(keys[0])}
    prefixes = {p for p in prefixes if p == '' or p.endswith('.')}
    best = min(prefixes or {''}, key=lambda p: sum(p + k not in terms for k in keys))
    missing = [best + k for k in keys if best + k not in terms]
    if missing:
        fail(f'{name}: the parser accepts {", ".join(keys)} together; '
             f'undocumented: {", ".join(missing)}')


def main():
    srcdir, vmrd, vmrdctl, broker, check = sys.argv[1:6]
    pages = {os.path.basename(p): p for p in sys.argv[6:]}
    man = shutil.which('man')
    if not man:
        print('SKIP: man is not installed (apt-get install man-db)')
        return 77

    for name, page in sorted(pages.items()):
        env = dict(os.environ, MANWIDTH='80', LC_ALL='C.UTF-8')
        out = subprocess.run([man, '--warnings', '-l', page], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if out.returncode != 0 or out.stderr:
            fail(f'{name}: man --warnings -l (exit {out.returncode}):\n{out.stderr}')

    for program, name in [(vmrd, 'vmrd.8'), (vmrdctl, 'vmrdctl.8'), (broker, 'vmrd-broker.8'),
                          (check, 'vmrd-plugin-check.1')]:
        text = help_text(program)
        terms = defined_terms(pages[name])
        options = long_options(text)
        if not options:
            fail(f'{program} --help: no long options found; has its format changed?')
        for option in options:
            if '--' + option not in terms:
                fail(f'{name}: does not document --{option}, which {os.path.basename(program)} --help lists')
        if name == 'vmrdctl.8':
            for command in vmrdctl_commands(text):
                if command not in terms:
                    fail(f'{name}: does not document the command {command}, which vmrdctl --help lists')

    for name, sources in CONFIG_SOURCES.items():
        terms = defined_terms(pages[name])
        groups, read = key_groups([os.path.join(srcdir, s) for s in sources])
        if not groups:
            fail(f'{name}: found no key lists in {", ".join(sources)}; has the parser changed?')
        for keys in groups:
            check_group(name, terms, keys)
        for key in sorted(read):
            if not any(t == key or t.endswith('.' + key) for t in terms):
                fail(f'{name}: does not document the key {key}, which the parser reads')

    if failures:
        print(f'{len(failures)} problem(s) in the man pages')
        return 1
    print(f'{len(pages)} man pages: no warnings, every option, command and config key documented')
    return 0


if __name__ == '__main__':
    sys.exit(main())
