# Regenerates the .npy fixtures with real NumPy (Debian 12's python3-numpy,
# NumPy 1.24.2): cd internal/npy/testdata && /usr/bin/python3 gen.py
# Each fixture is np.save output; want.txt lists the C-order values the Go
# tests expect, computed here by NumPy itself.
import numpy as np
from numpy.lib import format as npf

fixtures = {
    "f4_2x3.npy": np.array([[1, 2, 3], [4, 5, -0.5]], dtype="<f4"),
    "f8_scalar.npy": np.float64(-2.25),
    "i8_3.npy": np.array([7, -1, 1 << 40], dtype="<i8"),
    "i4_2x2.npy": np.array([[1, -2], [3, 2**31 - 1]], dtype="<i4"),
    "i1_4.npy": np.array([-128, -1, 0, 127], dtype="i1"),
    "u1_4.npy": np.array([0, 1, 200, 255], dtype="u1"),
    "b1_2x2.npy": np.array([[True, False], [False, True]]),
    "f4_0x3.npy": np.zeros((0, 3), dtype="<f4"),
    "u1_rank20.npy": np.arange(1, dtype="u1").reshape((1,) * 20),
    "fortran_f8_2x3x4.npy": np.asfortranarray(np.arange(24, dtype="<f8").reshape(2, 3, 4)),
    "fortran_i8_3x2.npy": np.asfortranarray(np.array([[1, 2], [3, 4], [5, 6]], dtype="<i8")),
    "be_i4_3.npy": np.array([1, -2, 70000], dtype=">i4"),
    "be_f8_2x2.npy": np.array([[1.5, -0.0], [1e300, 3]], dtype=">f8"),
    "be_f4_fortran_2x3.npy": np.asfortranarray(np.array([[1, 2, 3], [4, 5, 6]], dtype=">f4")),
}
versions = {"v2_u1_3.npy": ((2, 0), np.array([9, 8, 7], dtype="u1")),
            "v3_i8_2.npy": ((3, 0), np.array([5, -5], dtype="<i8"))}

with open("want.txt", "w") as want:
    for name, a in fixtures.items():
        np.save(name, a)
        want.write("%s %s %s %s\n" % (name, np.asarray(a).dtype.str, list(np.shape(a)), np.asarray(a).ravel(order="C").tolist()))
    for name, (v, a) in versions.items():
        with open(name, "wb") as f:
            npf.write_array(f, a, version=v)
        want.write("%s %s %s %s\n" % (name, a.dtype.str, list(a.shape), a.ravel().tolist()))
