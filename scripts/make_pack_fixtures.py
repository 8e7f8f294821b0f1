#!/usr/bin/python3
"""Validation-pack fixtures in every pickle form in circulation (docs/guide.md, "Training on
CASIA-WebFace / MS1M packs").

Writes tests/fixtures/packs/*.bin, read by tests/data/test_packs.cpp. Every file holds the same
content, so the test checks each against one expectation computed independently in C++:
  bins     6 "images": image k is bytes((37 k + 11 j) % 256 for j in range(LENGTHS[k])); the
           lengths cross SHORT_BINBYTES / BINBYTES boundaries and the bytes cover values >= 0x80
           (two UTF-8 bytes each in the _codecs.encode form)
  issame   [True, False, True]
Forms (as Python's own pickle writes them, except the two hand-made Python 2 streams):
  py2_str.bin          protocol 2, images as SHORT_BINSTRING/BINSTRING (insightface's packs),
                       hand-made opcode by opcode as Python 2's cPickle writes them
  py2_numpy.bin        protocol 2, numpy arrays whose raw data is a Python 2 str (hand-made)
  bytes_p2.bin         Python 3 bytes at protocol 2 (_codecs.encode(text, 'latin1'))
  bytes_p3/p4/p5.bin   Python 3 bytes at protocols 3-5 (BINBYTES, FRAME, MEMOIZE)
  numpy_p2.bin         numpy uint8 arrays at protocol 2 (_reconstruct + BUILD, data via _codecs)
  numpy_p4.bin         numpy uint8 arrays at protocol 4 (data as BINBYTES)
  numpy_p5.bin         numpy uint8 arrays at protocol 5 (_frombuffer with BYTEARRAY8)
  numpy_flags_p4.bin   bytes images, issame as a numpy bool array
Needs python3-numpy (apt). Run: /usr/bin/python3 scripts/make_pack_fixtures.py
"""
import os
import pickle
import struct

import numpy as np

LENGTHS = [3, 255, 256, 300, 1000, 7]
ISSAME = [True, False, True]
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "packs")


def image(k):
    return bytes((37 * k + 11 * j) % 256 for j in range(LENGTHS[k]))


def py2_string(b):
    # SHORT_BINSTRING below 256 bytes, else BINSTRING (4-byte little-endian length).
    if len(b) < 256:
        return b"U" + bytes([len(b)]) + b
    return b"T" + struct.pack("<I", len(b)) + b


def py2_stream(item):
    """(bins, issame) as Python 2's cPickle.dump(..., protocol=2) lays it out, with BINPUT memo
    entries after each container as cPickle writes them."""
    out = [b"\x80\x02", b"(", b"]", b"q\x01", b"("]  # MARK for the outer TUPLE, list, memo, MARK
    memo = 2
    for k in range(len(LENGTHS)):
        out.append(item(k, memo))
        memo += 1
    out += [b"e", b"]", b"q" + bytes([memo]), b"("]
    memo += 1
    out += [b"\x88" if s else b"\x89" for s in ISSAME]
    out += [b"e", b"t", b"q" + bytes([memo]), b"."]
    return b"".join(out)


def py2_numpy_item(k, memo):
    raw = image(k)
    return b"".join([
        b"cnumpy.core.multiarray\n_reconstruct\n",
        b"cnumpy\nndarray\n",
        b"K\x00\x85", b"U\x01b", b"\x87", b"R",
        b"(", b"K\x01", b"J" + struct.pack("<i", len(raw)), b"\x85",
        b"cnumpy\ndtype\n", b"U\x02u1", b"K\x00", b"K\x01", b"\x87", b"R",
        b"(", b"K\x03", b"U\x01|", b"N", b"N", b"N", b"J\xff\xff\xff\xff", b"J\xff\xff\xff\xff",
        b"K\x00", b"t", b"b",
        b"\x89", py2_string(raw), b"t", b"b",
    ])


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def main():
    os.makedirs(OUT, exist_ok=True)
    images = [image(k) for k in range(len(LENGTHS))]
    write("py2_str.bin", py2_stream(lambda k, memo: py2_string(images[k])))
    write("py2_numpy.bin", py2_stream(py2_numpy_item))
    for proto in (2, 3, 4, 5):
        write(f"bytes_p{proto}.bin", pickle.dumps((images, ISSAME), protocol=proto))
    arrays = [np.frombuffer(b, dtype=np.uint8).copy() for b in images]
    for proto in (2, 4, 5):
        write(f"numpy_p{proto}.bin", pickle.dumps((arrays, ISSAME), protocol=proto))
    write("numpy_flags_p4.bin", pickle.dumps((images, np.array(ISSAME)), protocol=4))
    # Every file must load in Python to the same content (the hand-made ones included).
    for name in sorted(os.listdir(OUT)):
        with open(os.path.join(OUT, name), "rb") as f:
            bins, issame = pickle.load(f, encoding="bytes")
        assert [bytes(b) for b in bins] == images, name
        assert [bool(s) for s in issame] == ISSAME, name
        print(f"{name}: {os.path.getsize(os.path.join(OUT, name))} bytes, loads in Python")


if __name__ == "__main__":
    main()
