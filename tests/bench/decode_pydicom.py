"""Decode-time benchmark of the reference decoder (pydicom + pylibjpeg), for `cargo xtask bench`.

`decode_pydicom.py --iterations N FILE...` times `dcmread(...).pixel_array` on the file's bytes in
memory — the peer of Bedside's `Study::open` + first frame — N times per file after one untimed
warm-up run, and prints one JSON line per file with the same keys as the native and browser
benchmarks: file, bytes, iterations, median_ms, min_ms, rows, columns.
"""

import argparse
import io
import json
import os
import statistics
import time

import pydicom


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    if args.iterations < 1:
        parser.error("--iterations must be at least 1")
    for path in args.files:
        with open(path, "rb") as f:
            data = f.read()

        def decode():
            ds = pydicom.dcmread(io.BytesIO(data))
            pixels = ds.pixel_array
            return ds, pixels

        ds, pixels = decode()
        times = []
        for _ in range(args.iterations):
            start = time.perf_counter()
            decode()
            times.append((time.perf_counter() - start) * 1e3)
        print(json.dumps({
            "file": os.path.basename(path),
            "bytes": len(data),
            "iterations": args.iterations,
            "median_ms": round(statistics.median(times), 3),
            "min_ms": round(min(times), 3),
            "rows": int(ds.Rows),
            "columns": int(ds.Columns),
        }), flush=True)


if __name__ == "__main__":
    main()
