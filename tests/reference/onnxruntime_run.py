"""Runs an ONNX model in onnxruntime (CPU, one thread) on raw float32 input.

    onnxruntime_run.py MODEL.onnx INPUT.f32 N C H W OUT_DIR [--time RUNS]

Writes each output as OUT_DIR/<name>.f32 (little-endian float32, row-major) and OUT_DIR/outputs.txt,
one line per output: its name, then its shape. With --time, also runs the model RUNS more times
after two warm-up runs and writes OUT_DIR/timing.txt: the median and the fastest run, in ms.
"""

import os
import sys
import time

import numpy as np
import onnxruntime as ort


def main():
    model, raw, n, c, h, w, out = sys.argv[1:8]
    runs = int(sys.argv[9]) if len(sys.argv) > 9 and sys.argv[8] == "--time" else 0
    x = np.fromfile(raw, dtype="<f4").reshape(int(n), int(c), int(h), int(w))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    feed = {session.get_inputs()[0].name: x}
    results = session.run(names, feed)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "outputs.txt"), "w") as f:
        for name, value in zip(names, results):
            value.astype("<f4").tofile(os.path.join(out, name + ".f32"))
            f.write(" ".join([name] + [str(d) for d in value.shape]) + "\n")
    if runs:
        for _ in range(2):
            session.run(names, feed)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            session.run(names, feed)
            times.append((time.perf_counter() - start) * 1000.0)
        with open(os.path.join(out, "timing.txt"), "w") as f:
            f.write(f"{float(np.median(times))} {min(times)}\n")


if __name__ == "__main__":
    main()
