"""Reference decode of the DICOM test corpus with pydicom, for Bedside's conformance test.

Usage: python pydicom_reference.py CORPUS_DIR OUT_DIR

The corpus has no HTJ2K file, so first a few of its files are re-encoded as HTJ2K (OpenJPH through
imagecodecs, lossless and lossy) into OUT_DIR/derived/, keyed `derived/<name>` below; see DERIVED.

For every .dcm file under CORPUS_DIR (sorted), then every derived file, it writes one entry of
OUT_DIR/reference.json: the shape,
dtype and MD5 (first frame, all frames) of exactly what pydicom's default `Dataset.pixel_array` returns,
as little-endian bytes, with the transfer syntax, photometric interpretation and whether the transfer
syntax is lossy — or the error pydicom gave. For lossy files the first frame is also saved as .npy in
OUT_DIR for a tolerance compare. The pinned package versions are in the Rust side that runs this script.
"""

import hashlib
import json
import logging
import sys
import warnings
from pathlib import Path

import imagecodecs
import numpy as np
import pydicom
from pydicom.encaps import encapsulate
from pydicom.uid import UID

# Transfer syntaxes whose decoded values depend on the decoder (lossy, or may be).
LOSSY = {
    "1.2.840.10008.1.2.4.50",  # JPEG baseline
    "1.2.840.10008.1.2.4.51",  # JPEG extended (12-bit)
    "1.2.840.10008.1.2.4.81",  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.4.203",  # HTJ2K
}


HTJ2K_LOSSLESS = "1.2.840.10008.1.2.4.201"
HTJ2K = "1.2.840.10008.1.2.4.203"

# HTJ2K files made from corpus files: (corpus file name, derived name, transfer syntax). Signed 16-bit,
# multi-frame unsigned 16-bit, odd-sized RGB, and one lossy (irreversible wavelet) file. The RPCL
# syntax (.202) is left out: the encoder here does not choose the progression order it requires.
DERIVED = [
    ("CT_small.dcm", "CT_small_htj2k.dcm", HTJ2K_LOSSLESS),
    ("emri_small.dcm", "emri_small_htj2k.dcm", HTJ2K_LOSSLESS),
    ("SC_rgb_small_odd.dcm", "SC_rgb_small_odd_htj2k.dcm", HTJ2K_LOSSLESS),
    ("MR_small.dcm", "MR_small_htj2k_lossy.dcm", HTJ2K),
]


def derive(corpus: Path, out_dir: Path) -> list[Path]:
    """Writes the DERIVED files: each frame of the source's pixel array encoded as one HTJ2K codestream."""
    made = []
    (out_dir / "derived").mkdir(exist_ok=True)
    for source, name, syntax in DERIVED:
        found = sorted(corpus.rglob(source))
        if not found:  # another corpus (the interop one): nothing to derive from
            continue
        ds = pydicom.dcmread(found[0])
        arr = ds.pixel_array
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        frames = arr if arr.ndim == (3 if samples == 1 else 4) else arr[None]
        reversible = syntax == HTJ2K_LOSSLESS
        ds.PixelData = encapsulate([imagecodecs.htj2k_encode(f, reversible=reversible) for f in frames])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = UID(syntax)
        if "PlanarConfiguration" in ds:
            ds.PlanarConfiguration = 0
        path = out_dir / "derived" / name
        ds.save_as(path, enforce_file_format=True)
        made.append(path)
    return made


def little_endian(arr: np.ndarray) -> bytes:
    return np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("<"), copy=False)).tobytes()


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def reference(path: Path, out_dir: Path, key: str) -> dict:
    entry = {"file": key}
    try:
        ds = pydicom.dcmread(path)
        meta = getattr(ds, "file_meta", None)
        ts = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
        entry["transfer_syntax"] = ts
        entry["photometric"] = str(ds.get("PhotometricInterpretation", ""))
        entry["lossy"] = ts in LOSSY
        arr = ds.pixel_array
    except Exception as exc:  # every failure is a result: the file is recorded as one pydicom refuses
        entry["error"] = one_line(exc)
        return entry
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    multi_frame = arr.ndim == (3 if samples == 1 else 4)
    first = arr[0] if multi_frame else arr
    entry["shape"] = list(arr.shape)
    entry["dtype"] = arr.dtype.name
    entry["md5_first"] = hashlib.md5(little_endian(first)).hexdigest()
    entry["md5_all"] = hashlib.md5(little_endian(arr)).hexdigest()
    if entry["lossy"]:
        npy = hashlib.md5(key.encode()).hexdigest()[:16] + ".npy"
        np.save(out_dir / npy, np.ascontiguousarray(first.astype(first.dtype.newbyteorder("<"))))
        entry["npy"] = npy
    return entry


def main() -> int:
    corpus, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
    out_dir.mkdir(parents=True, exist_ok=True)
    warnings.simplefilter("ignore")
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
    files = sorted(corpus.rglob("*.dcm"))
    entries = [reference(p, out_dir, p.relative_to(corpus).as_posix()) for p in files]
    entries += [reference(p, out_dir, p.relative_to(out_dir).as_posix()) for p in derive(corpus, out_dir)]
    versions = {"pydicom": pydicom.__version__, "numpy": np.__version__, "imagecodecs": imagecodecs.__version__}
    result = {"versions": versions, "files": entries}
    tmp = out_dir / "reference.json.tmp"
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(out_dir / "reference.json")
    print(f"{len(entries)} files, {sum('error' in e for e in entries)} errors", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
