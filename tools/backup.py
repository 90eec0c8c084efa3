#!/usr/bin/python3
"""Backs up an alignd data directory while alignd runs (docs/DEPLOY.md, "Backup and restore").

    tools/backup.py /var/lib/alignd /backups/alignd-2026-11-28

The copy is one alignd can start from, as if it had stopped at the moment of the backup:
  1. the blob files first (data set payloads, checkpoints, snapshots: each is written to a
     temporary file and renamed into place, so a copy is always of a whole file): every
     checkpoint copied is then at or before what the database will say;
  2. then the database, with SQLite's online backup (a consistent snapshot, WAL included);
  3. then the payloads and snapshots that records of that snapshot name but step 1 missed
     (stored in between; blobs are written before their records), never a newer checkpoint.
On start from the copy, each session that was running resumes from its copied checkpoint
and its metric log is cut back to that step (as after a crash): nothing is reported twice,
no event is missing, the weights are bit-identical to an uninterrupted run.

Restore: stop alignd, replace the data directory with the copy (owned by alignd's user),
start alignd. Needs only Python 3's standard library."""
import argparse
import os
import shutil
import sqlite3
import sys


def copy_blobs(src, dst, checkpoints=True):
    """Copies datasets/ and sessions/ files not in `dst` yet. Returns how many."""
    n = 0
    for top in ("datasets", "sessions"):
        for root, _, files in os.walk(os.path.join(src, top)):
            rel = os.path.relpath(root, src)
            for f in files:
                if ".tmp" in f or f.startswith(".upload-") or f.endswith(".part"):
                    continue  # a write in progress: not yet a blob
                if not checkpoints and f.startswith("checkpoint"):
                    continue
                target = os.path.join(dst, rel, f)
                if os.path.exists(target):
                    continue
                os.makedirs(os.path.dirname(target), exist_ok=True)
                try:
                    shutil.copy2(os.path.join(root, f), target + ".part")
                except FileNotFoundError:
                    continue  # replaced or deleted meanwhile: its record went first or goes too
                os.replace(target + ".part", target)
                n += 1
    return n


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data_dir", help="alignd's --data_dir")
    p.add_argument("dest", help="a new directory for the copy")
    a = p.parse_args()
    db = os.path.join(a.data_dir, "alignd.db")
    if not os.path.exists(db):
        sys.exit(f"backup: {db} not found: is {a.data_dir} an alignd data directory?")
    if os.path.exists(a.dest) and os.listdir(a.dest):
        sys.exit(f"backup: {a.dest} is not empty")
    os.makedirs(a.dest, exist_ok=True)
    first = copy_blobs(a.data_dir, a.dest)
    src = sqlite3.connect(db, timeout=30)
    out = sqlite3.connect(os.path.join(a.dest, "alignd.db"))
    with out:
        src.backup(out)
    src.close()
    out.close()
    later = copy_blobs(a.data_dir, a.dest, checkpoints=False)
    size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(a.dest) for f in fs)
    print(f"backup: {a.data_dir} -> {a.dest}: {first + later} files and the database, {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
