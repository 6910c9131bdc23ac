"""Write arrays as IDX files, the format MNIST is distributed in, and check their headers.

An IDX file is a big-endian header (two zero bytes, a type code, the number
of dimensions, then each dimension as uint32) followed by the raw values.
torchvision's MNIST reads these (and stops on a damaged header with a bare
``AssertionError``, so ``check_idx`` reads the header first); tests and
benchmarks write small ones.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from src.utils.errors import UserInputError

_TYPE_CODES = {np.dtype(np.uint8): 0x08}


def write_idx(path: str | Path, array: np.ndarray) -> None:
    array = np.ascontiguousarray(array)
    if array.dtype not in _TYPE_CODES:
        raise ValueError(f"write_idx writes uint8 arrays, got {array.dtype}")
    header = struct.pack(">BBBB", 0, 0, _TYPE_CODES[array.dtype], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(header + array.tobytes())


def check_idx(path: str | Path, ndim: int, advice: str) -> list[int]:
    """The dimensions of the uint8 IDX file ``path`` of ``ndim`` dimensions; one message
    (ending in ``advice``) when its header or size says it is not one."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as file:
        head = file.read(4 + 4 * ndim)
    problem = None
    if len(head) < 4 + 4 * ndim or head[:2] != b"\0\0" or head[2] != 0x08 or head[3] != ndim:
        problem = f"its header is not that of a {ndim}-dimensional uint8 IDX file"
        dims: list[int] = []
    else:
        dims = list(struct.unpack(f">{ndim}I", head[4:]))
        expected = len(head) + int(np.prod(dims, dtype=np.int64))
        if size != expected:
            problem = (
                f"its header promises {dims} values ({expected:,} bytes), the file has {size:,}"
            )
    if problem:
        raise UserInputError(f"{path} is corrupt or not an IDX file: {problem}. {advice}")
    return dims


def write_mnist_like(
    raw_dir: str | Path, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]
) -> None:
    """Write (images N x 28 x 28 uint8, labels N uint8) pairs as MNIST's four raw files."""
    for prefix, (images, labels) in (("train", train), ("t10k", test)):
        write_idx(Path(raw_dir) / f"{prefix}-images-idx3-ubyte", images)
        write_idx(Path(raw_dir) / f"{prefix}-labels-idx1-ubyte", labels)


def digits_as_mnist(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` MNIST-shaped images made from scikit-learn's real 8x8 digits.

    Each digit is scaled to 24x24 (nearest neighbour), placed in the 28x28
    frame with a random shift of up to 2 pixels and light noise, so that a
    model trained on the result learns real digit shapes.
    """
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    digits = load_digits()
    pick = rng.integers(0, len(digits.images), size=n)
    small = digits.images[pick] * (255.0 / 16.0)
    large = small.repeat(3, axis=1).repeat(3, axis=2)  # 24 x 24
    images = np.zeros((n, 28, 28), dtype=np.float32)
    shifts = rng.integers(0, 5, size=(n, 2))
    for offset_y in range(5):
        for offset_x in range(5):
            chosen = (shifts[:, 0] == offset_y) & (shifts[:, 1] == offset_x)
            images[chosen, offset_y : offset_y + 24, offset_x : offset_x + 24] = large[chosen]
    images += rng.standard_normal(images.shape, dtype=np.float32) * 8.0
    return images.clip(0, 255).astype(np.uint8), digits.target[pick].astype(np.uint8)
