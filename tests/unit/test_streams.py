# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The blob sink: parallel deflate in fixed blocks gives one valid gzip stream, the same bytes on any
number of cores, and the digests of what it wrote."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
import threading
import zlib

import pytest

from ctr import streams


def sink_bytes(data, pieces=(1, 4095, 70000, 1 << 20, 3 << 20)):
    """Feed ``data`` in uneven pieces; return (compressed bytes, LayerDigests)."""
    out = io.BytesIO()
    sink = streams.BlobSink(out, 'gzip', 6)
    pos, i = 0, 0
    while pos < len(data):
        n = pieces[i % len(pieces)]
        sink.write(data[pos:pos + n])
        pos, i = pos + n, i + 1
    digests = sink.finish()
    sink.abort()
    return out.getvalue(), digests


def sample(size):
    # compressible but not trivial: text with some noise
    words = [b'alpha', b'beta', b'gamma', b'delta', os.urandom(8)]
    out = bytearray()
    i = 0
    while len(out) < size:
        out += words[i % 5] + (b'\n' if i % 7 == 0 else b' ')
        i += 1
    return bytes(out[:size])


@pytest.mark.parametrize('size', [0, 1, 32767, 1 << 20, (1 << 20) + 1, 5 * (1 << 20) + 12345])
def test_one_valid_gzip_stream_with_right_digests(size):
    data = sample(size)
    blob, digests = sink_bytes(data)
    assert gzip.decompress(blob) == data
    assert zlib.decompress(blob, 16 + zlib.MAX_WBITS) == data
    assert subprocess.run(['gzip', '-dc'], input=blob, capture_output=True, check=True).stdout == data
    assert digests.diff_id == 'sha256:' + hashlib.sha256(data).hexdigest()
    assert digests.digest == 'sha256:' + hashlib.sha256(blob).hexdigest()
    assert digests.size == len(blob) and digests.diff_size == len(data)
    assert blob[:10] == b'\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff'


def test_same_bytes_whatever_the_number_of_threads(monkeypatch):
    data = sample(4 * (1 << 20) + 999)
    outputs = set()
    for threads in (1, 2, 3, 8):
        monkeypatch.setattr(streams, '_MAX_THREADS', threads)
        monkeypatch.setattr(streams.os, 'cpu_count', lambda: 8)
        outputs.add(sink_bytes(data)[0])
    assert len(outputs) == 1


def test_blocks_are_primed_so_compression_stays_good():
    data = sample(4 << 20)
    blob = sink_bytes(data)[0]
    single = zlib.compress(data, 6)
    assert len(blob) < len(single) * 1.02


def test_a_failing_writer_surfaces_and_stops_the_threads():
    class Broken:
        def write(self, data):
            raise OSError(28, 'No space left on device')

    class BrokenLater:
        def __init__(self):
            self.calls = 0

        def write(self, data):
            self.calls += 1
            if self.calls > 1:
                raise OSError(28, 'No space left on device')
            return len(data)

    with pytest.raises(Exception) as err:
        streams.BlobSink(Broken(), 'gzip', 6)
    assert 'no space left on device' in str(err.value).lower()
    sink = streams.BlobSink(BrokenLater(), 'gzip', 6)
    with pytest.raises(Exception) as err:
        sink.write(sample(12 << 20))
        sink.finish()
    sink.abort()
    assert 'no space left on device' in str(err.value).lower()
    assert not [t for t in threading.enumerate() if t.name.startswith('ctr-layer-gzip')]


def test_incompressible_blocks_are_stored_and_the_stream_stays_deterministic():
    import random
    rnd = random.Random(7)
    data = rnd.randbytes(3 << 20) + b'text ' * 200000    # random, then compressible
    outs = []
    for dummy in range(2):
        out = io.BytesIO()
        sink = streams.BlobSink(out, 'gzip', 6)
        sink.write(data)
        sink.finish()
        outs.append(out.getvalue())
    assert outs[0] == outs[1] and gzip.decompress(outs[0]) == data
    assert len(outs[0]) < len(data) - 900000          # the text part was compressed
    assert len(outs[0]) > (3 << 20)                    # the random part was stored, not "compressed"
