"""Audio helpers for the media tests (standard library only, pure python).

G.711 mu-law encode/decode (ITU-T G.711, the same tables audioop uses), sine tone generation,
WAV reading (16-bit PCM, any number of channels) and writing (mono), and frequency analysis
with the Goertzel algorithm: `dominant_frequency` scans candidate frequencies and refines around the best one;
`tone_seconds` counts how much of a signal is a given tone (block by block), for recordings that
hold silence or other audio around the tone.
"""

import math
import struct
import wave

RATE = 8000
FRAME_MS = 20
FRAME_SAMPLES = RATE * FRAME_MS // 1000   # 160 samples = 160 mu-law bytes per 20 ms

# ---------------------------------------------------------------------------------- mu-law

_BIAS = 0x84
_SEG_UEND = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)


def _ulaw_encode_one(s):
    """Sun's g711.c st_14linear2ulaw on s >> 2 (bit-exact with audioop.lin2ulaw)."""
    v = s >> 2
    if v < 0:
        v, mask = -v, 0x7F
    else:
        mask = 0xFF
    if v > 8159:
        v = 8159
    v += _BIAS >> 2
    for seg, end in enumerate(_SEG_UEND):
        if v <= end:
            return ((seg << 4) | ((v >> (seg + 1)) & 0x0F)) ^ mask
    return 0x7F ^ mask


def _ulaw_decode_one(u):
    u = ~u & 0xFF
    sign = u & 0x80
    exp = (u >> 4) & 0x07
    mant = u & 0x0F
    s = ((mant << 3) + _BIAS) << exp
    s -= _BIAS
    return -s if sign else s


_DEC = [_ulaw_decode_one(u) for u in range(256)]
_ENC = None   # 65536-entry table, built on first use


def _enc_table():
    global _ENC
    if _ENC is None:
        _ENC = bytes(_ulaw_encode_one(s - 32768) for s in range(65536))
    return _ENC


def ulaw_encode(samples):
    """Signed 16-bit ints -> mu-law bytes."""
    t = _enc_table()
    return bytes(t[(max(-32768, min(32767, int(s)))) + 32768] for s in samples)


def ulaw_decode(data):
    """mu-law bytes -> list of signed 16-bit ints."""
    return [_DEC[b] for b in data]


ULAW_SILENCE = 0xFF   # encodes 0


# ----------------------------------------------------------------------------------- tones


def tone(freq, seconds, rate=RATE, amplitude=8000):
    """A sine tone as a list of signed 16-bit ints."""
    n = int(round(seconds * rate))
    w = 2 * math.pi * freq / rate
    return [int(round(amplitude * math.sin(w * i))) for i in range(n)]


def tone_ulaw(freq, seconds, rate=RATE, amplitude=8000):
    return ulaw_encode(tone(freq, seconds, rate, amplitude))


def frames(data, size=FRAME_SAMPLES):
    """Split mu-law bytes into 20 ms frames (the last one padded with silence)."""
    out = []
    for i in range(0, len(data), size):
        f = data[i:i + size]
        if len(f) < size:
            f = f + bytes([ULAW_SILENCE]) * (size - len(f))
        out.append(f)
    return out


# ------------------------------------------------------------------------------------- WAV


def write_wav(path, samples, rate=RATE):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(struct.pack("<%dh" % len(samples), *samples))


def write_tone_wav(path, freq, seconds, rate=RATE, amplitude=8000):
    write_wav(path, tone(freq, seconds, rate, amplitude), rate)
    return path


def parse_wav(raw, what="WAV"):
    """A 16-bit PCM WAV's bytes -> dict(format, channels, rate, bits, data_size, samples): the
    fmt chunk's values, the data chunk's declared size and one list of samples per channel.  A
    file still being written (its header not yet final, as baresip's sndfile leaves it during a
    call) is read up to its last whole frame."""
    # walk the RIFF chunks ourselves: a live file's sizes may be 0 or stale
    assert raw[:4] == b"RIFF" and raw[8:12] == b"WAVE", "not a WAV file: %s" % what
    pos = 12
    fmt = rate = channels = bits = None
    while pos + 8 <= len(raw):
        cid = raw[pos:pos + 4]
        size = struct.unpack("<I", raw[pos + 4:pos + 8])[0]
        body = pos + 8
        if cid == b"fmt ":
            fmt, channels, rate, _br, _ba, bits = struct.unpack("<HHIIHH", raw[body:body + 16])
        elif cid == b"data":
            assert rate and bits == 16, "%s: need 16-bit PCM (fmt %r/%r)" % (what, rate, bits)
            data = raw[body:] if size == 0 or body + size > len(raw) else raw[body:body + size]
            step = 2 * channels
            data = data[:len(data) - len(data) % step]
            allc = struct.unpack("<%dh" % (len(data) // 2), data)
            return {"format": fmt, "channels": channels, "rate": rate, "bits": bits,
                    "data_size": size, "samples": [list(allc[c::channels]) for c in range(channels)]}
        pos = body + size + (size & 1)
    raise AssertionError("%s: no data chunk" % what)


def read_wav(path):
    """(rate, samples of channel 0) of a 16-bit PCM WAV file (see parse_wav)."""
    with open(path, "rb") as f:
        w = parse_wav(f.read(), path)
    return w["rate"], w["samples"][0]


# -------------------------------------------------------------------------------- analysis


def goertzel_power(samples, freq, rate=RATE):
    """Power of `freq` in `samples` (normalised by length, comparable across windows)."""
    n = len(samples)
    if n == 0:
        return 0.0
    coeff = 2.0 * math.cos(2.0 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s0 = x + coeff * s1 - s2
        s2 = s1
        s1 = s0
    return max(0.0, s1 * s1 + s2 * s2 - coeff * s1 * s2) / (n * n)


def energy(samples):
    return sum(x * x for x in samples) / max(1, len(samples))


def rms(samples):
    return math.sqrt(energy(samples))


def loudest_window(samples, n):
    """The `n`-sample slice (20 ms aligned) with the most energy."""
    if len(samples) <= n:
        return list(samples)
    best, best_e = 0, -1.0
    step = FRAME_SAMPLES
    for i in range(0, len(samples) - n + 1, step * 5):
        e = energy(samples[i:i + n])   # every sample: a stride aliases tones (1000 Hz by 4 is Nyquist)
        if e > best_e:
            best, best_e = i, e
    return list(samples[best:best + n])


def dominant_frequency(samples, rate=RATE, lo=100.0, hi=3800.0, window=4000):
    """The dominant frequency (Hz) of `samples` (its loudest `window` samples): a 10 Hz scan
    from `lo` to `hi`, then a 1 Hz refinement around the best bin.  None for silence."""
    x = loudest_window(samples, window)
    if not x or rms(x) < 50:
        return None
    coarse = x[:1600]
    best_f, best_p = lo, -1.0
    f = lo
    while f <= hi:
        p = goertzel_power(coarse, f, rate)
        if p > best_p:
            best_f, best_p = f, p
        f += 10.0
    f = best_f - 12.0
    fine_best, fine_p = best_f, -1.0
    while f <= best_f + 12.0:
        p = goertzel_power(x, f, rate)
        if p > fine_p:
            fine_best, fine_p = f, p
        f += 1.0
    return fine_best


def tone_fraction(samples, freq, rate=RATE):
    """Share (0..1) of the energy of `samples` that is at `freq` (a pure tone gives ~1)."""
    e = energy(samples)
    if e == 0:
        return 0.0
    # the Goertzel power of a sine of amplitude A over whole periods is A^2/4; its energy A^2/2
    return min(1.0, 2.0 * goertzel_power(samples, freq, rate) / e)


def tone_seconds(samples, freq, rate=RATE, block_ms=100, min_rms=300, min_fraction=0.6):
    """Seconds of `samples` whose blocks are loud and mostly `freq`."""
    n = rate * block_ms // 1000
    hits = 0
    for i in range(0, len(samples) - n + 1, n):
        b = samples[i:i + n]
        if rms(b) >= min_rms and tone_fraction(b, freq, rate) >= min_fraction:
            hits += 1
    return hits * block_ms / 1000.0


def assert_frequency(samples, expected, tolerance=0.03, rate=RATE, what="audio"):
    f = dominant_frequency(samples, rate)
    assert f is not None, "%s is silent (%d samples, rms %.0f)" % (what, len(samples), rms(samples) if samples else 0)
    assert abs(f - expected) <= expected * tolerance, (
        "%s: dominant frequency %.0f Hz, expected %.0f Hz +-%.0f%%" % (what, f, expected, tolerance * 100))
    return f
