"""What each party really hears: RTP captured on the loopback, decoded and measured by FFT.

A party is a sipp phone that streams its own tone and advertises a media port;
Asterisk sends that party's audio to the port, so the packets captured with
destination = that port are exactly what the party hears. Levels are in dBFS of
the μ-law decoded signal: a full-scale sine reads 0 dBFS; a heard tone lands
around −6…−13 dBFS, an absent one far below −60.
"""

from __future__ import annotations

import signal
import struct
import subprocess
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 8000


def _ulaw_table() -> np.ndarray:
    codes = np.arange(256, dtype=np.int32)
    inverted = ~codes & 0xFF
    sign = inverted & 0x80
    exponent = (inverted >> 4) & 0x07
    mantissa = inverted & 0x0F
    magnitude = ((mantissa << 3) + 0x84) << exponent
    linear = np.where(sign != 0, 0x84 - magnitude, magnitude - 0x84)
    return linear.astype(np.float64) / 32768.0


ULAW = _ulaw_table()


@dataclass(frozen=True)
class Packet:
    at: float  # capture time, seconds since the epoch
    payload_type: int
    payload: bytes


def read_rtp(path: Path) -> dict[int, list[Packet]]:
    """RTP packets of a pcap file (DLT_EN10MB or Linux cooked), by UDP destination port."""
    data = path.read_bytes()
    if len(data) < 24:
        return {}
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    nanoseconds = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    link_type = struct.unpack(endian + "I", data[20:24])[0]
    link_header = {1: 14, 113: 16, 276: 20}.get(link_type)
    if link_header is None:
        raise ValueError(f"unsupported pcap link type {link_type}")
    packets: dict[int, list[Packet]] = defaultdict(list)
    offset = 24
    while offset + 16 <= len(data):
        seconds, fraction, captured, _ = struct.unpack(endian + "IIII", data[offset:offset + 16])
        frame = data[offset + 16:offset + 16 + captured]
        offset += 16 + captured
        ip = frame[link_header:]
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        udp = ip[(ip[0] & 0x0F) * 4:]
        destination = struct.unpack(">H", udp[2:4])[0]
        rtp = udp[8:]
        if len(rtp) < 12 or rtp[0] >> 6 != 2:
            continue
        header = 12 + (rtp[0] & 0x0F) * 4
        if rtp[0] & 0x10 and len(rtp) >= header + 4:
            header += 4 + struct.unpack(">H", rtp[header + 2:header + 4])[0] * 4
        at = seconds + fraction / (1e9 if nanoseconds else 1e6)
        packets[destination].append(Packet(at, rtp[1] & 0x7F, rtp[header:]))
    return dict(packets)


def samples(packets: list[Packet], start: float, end: float) -> np.ndarray:
    """The PCMU audio a port received between two capture times."""
    chosen = [p.payload for p in packets if start <= p.at < end and p.payload_type == 0]
    if not chosen:
        return np.zeros(0)
    return ULAW[np.frombuffer(b"".join(chosen), dtype=np.uint8)]


def level_dbfs(signal_: np.ndarray, frequency: float, width: float = 20.0) -> float:
    """Level of one tone in a signal, in dBFS (a full-scale sine is 0 dBFS)."""
    if len(signal_) < SAMPLE_RATE // 4:
        raise AssertionError(f"only {len(signal_)} samples to analyse: the party received too little audio")
    window = np.hanning(len(signal_))
    spectrum = np.abs(np.fft.rfft(signal_ * window))
    frequencies = np.fft.rfftfreq(len(signal_), 1 / SAMPLE_RATE)
    band = (frequencies >= frequency - width) & (frequencies <= frequency + width)
    amplitude = spectrum[band].max() * 2 / window.sum()
    return float(20 * np.log10(max(amplitude, 1e-12)))


class RtpCapture:
    """tcpdump on lo, writing the UDP packets sent to the given ports."""

    def __init__(self, path: Path, ports: list[int]) -> None:
        self.path = path
        expression = "udp and (" + " or ".join(f"dst port {port}" for port in ports) + ")"
        # --immediate-mode: without it libpcap hands packets over in batches, and a
        # read right after a mode switch would miss the last second of audio.
        self.process = subprocess.Popen(["tcpdump", "-i", "lo", "-n", "-U", "--immediate-mode", "-s", "0",
                                         "-w", str(path), expression],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert self.process.stderr is not None
        deadline = time.monotonic() + 10
        line = b""
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            if b"listening on" in line or not line:
                break
        if b"listening on" not in line:
            self.process.kill()
            raise RuntimeError(f"tcpdump did not start: {line.decode(errors='replace').strip()}")

    def stop(self) -> dict[int, list[Packet]]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(10)
        return read_rtp(self.path)


def hears(packets: dict[int, list[Packet]], port: int, start: float, end: float,
          tones: dict[str, float]) -> dict[str, float]:
    """Level of each named tone in what the party on `port` received in [start, end)."""
    audio = samples(packets.get(port, []), start, end)
    try:
        return {name: level_dbfs(audio, frequency) for name, frequency in tones.items()}
    except AssertionError as error:
        raise AssertionError(f"port {port}: {error}") from None


def wav_tracks(path: Path) -> list[np.ndarray]:
    """The channels of a 16-bit PCM WAV file as float arrays (full scale = 1.0), 8 kHz checked."""
    import wave

    with wave.open(str(path)) as wav:
        assert wav.getframerate() == SAMPLE_RATE and wav.getsampwidth() == 2, \
            f"{path}: {wav.getframerate()} Hz, {wav.getsampwidth() * 8} bit"
        channels = wav.getnchannels()
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float64) / 32768.0
    return [data[i::channels] for i in range(channels)]


def track_levels(track: np.ndarray, start: float, end: float, tones: dict[str, float]) -> dict[str, float]:
    """Level of each named tone in seconds [start, end) of one recorded track."""
    piece = track[int(start * SAMPLE_RATE):int(end * SAMPLE_RATE)]
    return {name: level_dbfs(piece, frequency) for name, frequency in tones.items()}
