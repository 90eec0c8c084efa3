#!/usr/bin/env python3
"""Reads the sanitizer reports that a run wrote (ASAN_OPTIONS/TSAN_OPTIONS log_path=DIR/...)
and fails on every report with a frame of ours: a stack frame in a file under the
project's core/, server/, client/, tools/ or tests/. Reports made only of library frames
(Debian's gRPC and protobuf are not instrumented, and TSan reports races inside them,
e.g. in tcp_send and slice buffers) are counted and listed by library, not failed.

Usage: check_reports.py DIR PROJECT_ROOT
Exit 0 if no report has a frame of ours, 1 otherwise (and prints those reports)."""
import collections
import os
import re
import sys

OURS = ("core/", "server/", "client/", "tools/", "tests/")


def reports(text):
    """Splits a log into reports (each starts with '==...==WARNING' or 'ERROR' or a UBSan 'runtime error')."""
    blocks, current = [], []
    for line in text.splitlines():
        if re.match(r"^(==\d+==(WARNING|ERROR)|WARNING: ThreadSanitizer|.*runtime error:)", line) and current:
            blocks.append("\n".join(current))
            current = []
        current.append(line)
    if current:
        blocks.append("\n".join(current))
    return [b for b in blocks if re.search(r"(WARNING|ERROR|runtime error)", b)]


def main(log_dir, root):
    root = os.path.realpath(root) + "/"
    ours, libraries = [], collections.Counter()
    if not os.path.isdir(log_dir):
        print(f"sanitizer reports: none ({log_dir} does not exist)")
        return 0
    for name in sorted(os.listdir(log_dir)):
        with open(os.path.join(log_dir, name), errors="replace") as f:
            for r in reports(f.read()):
                frames = re.findall(r"#\d+ .*? (/\S+?)(?::\d+)?(?::\d+)?\)?$", r, re.M) + \
                    re.findall(r"#\d+ .*?\((\S+?)\+0x", r)
                mine = [fr for fr in frames if fr.startswith(root) and fr[len(root):].startswith(OURS)]
                if mine or "runtime error" in r.splitlines()[0] and root in r.splitlines()[0]:
                    ours.append((name, r))
                else:
                    libs = sorted({os.path.basename(fr) for fr in frames if ".so" in fr}) or ["(no frames)"]
                    libraries[", ".join(libs[:3])] += 1
    for lib, n in libraries.most_common():
        print(f"sanitizer reports only in libraries ({lib}): {n}")
    for name, r in ours:
        print(f"---- {name}\n{r}\n")
    print(f"sanitizer reports with a frame of ours: {len(ours)}")
    return 1 if ours else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
