#!/usr/bin/env python3
"""What one fdatasync costs on this machine (a benchmark, not a test).

    python3 bench/audit/fsync_probe.py [DIR]     # DIR: a folder on the disk of the trail (default: the temp dir)

A file in DIR is filled once (256 KiB, synced), then, 2,000 times each:
three 4 KiB pages are overwritten at offsets the file already holds (as the
audit trail's WAL is written after a restart) and fdatasync'd; the same
writes without fdatasync; and three pages appended to the end of the file and
fdatasync'd (as a WAL that grows, and the database at every checkpoint: the
file's size and blocks change, so the flush commits the file system's
journal too). Prints the CPU time (user + system, getrusage) and the wall time
per round of each, so that the CPU one group commit's flush costs can be told
apart from the rest of a commit, and for the flushing rounds the wall time's
p50 / p99 / p99.9 / max: the floor under the audit trail's durable wait (a
record waits for one flush, often two). The file is deleted at the end;
nothing else in DIR is touched.
"""
import os
import resource
import sys
import tempfile
import time

ROUNDS = 2000
PAGE = 4096


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime, r.ru_stime


def main(argv):
    folder = argv[1] if len(argv) > 1 else tempfile.gettempdir()
    fd, path = tempfile.mkstemp(prefix="customs-fsync-probe-", dir=folder)
    try:
        os.pwrite(fd, b"\0" * (PAGE * 64), 0)
        os.fsync(fd)
        page = b"x" * PAGE
        end = PAGE * 64
        for what, sync, append in (("3 pages written, fdatasync", True, False),
                                   ("3 pages written, no sync", False, False),
                                   ("3 pages appended, fdatasync", True, True)):
            walls = []
            c0, s0 = cpu()
            t0 = time.perf_counter()
            for i in range(ROUNDS):
                r0 = time.perf_counter()
                offset = end if append else (i % 20) * 3 * PAGE
                for k in range(3):
                    os.pwrite(fd, page, offset + k * PAGE)
                if append:
                    end += 3 * PAGE
                if sync:
                    os.fdatasync(fd)
                walls.append(time.perf_counter() - r0)
            c1, s1 = cpu()
            t1 = time.perf_counter()
            print(f"{what:28} CPU {1e6 * (c1 - c0) / ROUNDS:7.1f} us per round "
                  f"(system {1e6 * (s1 - s0) / ROUNDS:6.1f}), wall {1e6 * (t1 - t0) / ROUNDS:7.1f} us")
            if sync:
                walls.sort()
                at = lambda q: 1e3 * walls[min(len(walls) - 1, int(q * len(walls)))]
                print(f"{'':28} wall per round: p50 {at(0.5):.3f} ms  p99 {at(0.99):.3f} ms  "
                      f"p99.9 {at(0.999):.3f} ms  max {1e3 * walls[-1]:.3f} ms")
    finally:
        os.close(fd)
        os.unlink(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
