#!/usr/bin/env python3
"""What one fdatasync costs on this machine (a benchmark, not a test).

    python3 bench/audit/fsync_probe.py [DIR]     # DIR: a folder on the disk of the trail (default: the temp dir)

A file in DIR is filled once (256 KiB, synced), then, 2,000 times each:
three 4 KiB pages are overwritten at offsets the file already holds (as the
audit trail's WAL is written after a restart) and fdatasync'd; then the same
writes without fdatasync. Prints the CPU time (user + system, getrusage) and
the wall time per round of each, so that the CPU one group commit's flush
costs can be told apart from the rest of a commit. The file is deleted at the
end; nothing else in DIR is touched.
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
        for sync in (True, False):
            c0, s0 = cpu()
            t0 = time.perf_counter()
            for i in range(ROUNDS):
                offset = (i % 20) * 3 * PAGE
                for k in range(3):
                    os.pwrite(fd, page, offset + k * PAGE)
                if sync:
                    os.fdatasync(fd)
            c1, s1 = cpu()
            t1 = time.perf_counter()
            what = "3 pages written, fdatasync" if sync else "3 pages written, no sync"
            print(f"{what:28} CPU {1e6 * (c1 - c0) / ROUNDS:7.1f} us per round "
                  f"(system {1e6 * (s1 - s0) / ROUNDS:6.1f}), wall {1e6 * (t1 - t0) / ROUNDS:7.1f} us")
    finally:
        os.close(fd)
        os.unlink(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
