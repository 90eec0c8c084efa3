#!/usr/bin/env python3
"""Reads the sanitizer reports a run wrote (ASAN_OPTIONS/TSAN_OPTIONS/UBSAN_OPTIONS
log_path=DIR/...) and fails on every report whose code is ours.

A report is ours when the first frame of any of its stacks that is not the sanitizer
runtime or the C++ standard library's headers lies in the project's core/, server/,
client/, tools/ or tests/ (a race on our data, a use-after-free in our code, undefined
behaviour in a file of ours). Reports whose accesses are inside Debian's libraries
(gRPC, protobuf, Abseil's internals: uninstrumented, or instrumented but racing inside
themselves) are counted per library and listed, not failed.

Usage: check_reports.py DIR PROJECT_ROOT
Exit 0 if no report is ours, 1 otherwise (and prints those reports)."""
import collections
import os
import re
import sys

OURS = ("core/", "server/", "client/", "tools/", "tests/")
FRAME = re.compile(r"^\s*#\d+\s+(?P<func>.*?)\s+(?P<file>\S+?)(?::\d+)*\s+\((?P<module>[^+)]+)")
# The stacks of a report that are accesses (not allocation or thread-creation stacks).
ACCESS = re.compile(r"^  (Previous )?(atomic )?(Atomic )?(Write|Read|write|read) of size|^(READ|WRITE) of size|"
                    r"^  Mutex M\d+ acquired|^  Cycle in lock order")
# A race between two accesses that both happen on gRPC's callback threads, where one of
# them creates or destroys the object (operator new/delete, a constructor or destructor):
# gRPC hands objects between its threads (an interceptor made on one thread, run on a
# second, destroyed on a third; a reactor deleted in OnDone after OnCancel returned) and
# orders those steps with its own synchronization, which is not instrumented, so TSan
# cannot see the order. Counted apart, not failed. A race where either access is on one
# of our own threads (a training worker, the ticker) is never this, and fails.
LIFETIME = re.compile(r"operator new|operator delete|\bmalloc\b|\bfree\b|deallocate|(?:^|::|\s)~\w|"
                      r"(?P<cls>\b\w+)::(?P=cls)\(")
# TSan names an inlined constructor by its bare class name ("#0 RpcLog rpc_log.cc:29"): the
# interceptor made by RpcLogFactory on one gRPC thread and run on another.
BARE_CONSTRUCTOR = re.compile(r"^[A-Z]\w*$")


def in_grpc(stack):
    # libgpr is gRPC's own support library (gpr_malloc allocates its call arenas).
    return any("grpc" in line or "libgpr" in line for line in stack)


def lifetime(stack):
    funcs = [FRAME.match(line).group("func") for line in stack[:4]]
    return any(LIFETIME.search(f) or BARE_CONSTRUCTOR.match(f) for f in funcs)


def is_runtime(file, module):
    return (file.startswith("/usr/include/c++") or "sanitizer" in file or "libsanitizer" in file
            or file.startswith("../sysdeps")
            or module.startswith(("libtsan", "libasan", "libubsan", "libstdc++", "libc.so")))


def split_reports(text):
    blocks, current = [], []
    for line in text.splitlines():
        starts = re.match(r"^(==\d+==(WARNING|ERROR)|WARNING: ThreadSanitizer|\S.*runtime error:)", line)
        if starts and current:
            blocks.append(current)
            current = []
        current.append(line)
    if current:
        blocks.append(current)
    return [b for b in blocks if re.search(r"WARNING|ERROR|runtime error", b[0])]


def access_stacks(lines):
    """The access stacks of a report (TSan: the two accesses; ASan: the bad access), as
    lists of frame lines; a report without such headers is one stack."""
    stacks, current, inside = [], None, False
    has_headers = any(ACCESS.match(line) for line in lines)
    for line in lines:
        if ACCESS.match(line) or (not has_headers and current is None and FRAME.match(line)):
            current = []
            stacks.append(current)
            inside = True
            if not FRAME.match(line):
                continue
        elif FRAME.match(line) is None and line.strip() and not line.startswith("    "):
            inside = False
        if inside and FRAME.match(line):
            current.append(line)
    return stacks


def first_frame(stack):
    for line in stack:
        m = FRAME.match(line)
        if not is_runtime(m.group("file"), m.group("module")):
            return m.group("file"), m.group("module")
    return None


def main(log_dir, root):
    root = os.path.realpath(root) + "/"
    ours, libraries = [], collections.Counter()
    if not os.path.isdir(log_dir):
        print(f"sanitizer reports: none ({log_dir} does not exist)")
        return 0
    for name in sorted(os.listdir(log_dir)):
        with open(os.path.join(log_dir, name), errors="replace") as f:
            for report in split_reports(f.read()):
                head = report[0]
                if "runtime error:" in head:
                    mine = head.startswith(root) and head[len(root):].startswith(OURS)
                    where = [head.split(":")[0]]
                else:
                    stacks = access_stacks(report[1:])
                    # A stack TSan could not restore is empty: it proves nothing either way.
                    known = [st for st in stacks if st]
                    if (len(stacks) >= 2 and known and all(in_grpc(st) for st in known)
                            and any(lifetime(st) for st in known)):
                        libraries["object lifetimes ordered inside gRPC"] += 1
                        continue
                    frames = [f for f in (first_frame(st) for st in stacks) if f]
                    mine = any((f.startswith(root) and f[len(root):].startswith(OURS)) or f.startswith(OURS)
                               for f, _ in frames)
                    where = sorted({"grpc++ headers" if f.startswith("/usr/include/grpcpp") else
                                    "absl" if "/absl/" in f else
                                    "nlohmann-json" if "/nlohmann/" in f else m for f, m in frames})
                if mine:
                    ours.append((name, "\n".join(report)))
                else:
                    libraries[", ".join(where[:3]) or "(no frames)"] += 1
    for lib, n in libraries.most_common():
        print(f"sanitizer reports inside libraries ({lib}): {n}")
    for name, r in ours:
        print(f"---- {name}\n{r}\n")
    print(f"sanitizer reports in our code: {len(ours)}")
    return 1 if ours else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
