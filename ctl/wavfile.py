"""Reading and fixing the WAV headers the PBX writes.

Asterisk writes a 44-byte RIFF header with zero sizes when it opens a recording
and fills the sizes in when it closes the file: a header whose data size matches
the bytes on disk is the sign that the PBX has finished with the file. MixMonitor's
stereo option (D) interleaves two channels but still declares one, so ctl rewrites
the channel count once the file is closed.
"""

from __future__ import annotations

import struct
import sys
from array import array
from dataclasses import dataclass
from pathlib import Path


class NotWav(ValueError):
    pass


@dataclass(frozen=True)
class WavInfo:
    channels: int
    sample_rate: int
    bits: int
    data_offset: int
    declared_data: int  # what the header says
    file_size: int
    declared_riff: int = 0  # RIFF chunk size: 0 while Asterisk still writes the file

    @property
    def data_on_disk(self) -> int:
        return max(0, self.file_size - self.data_offset)

    @property
    def closed(self) -> bool:
        """The writer filled the sizes in, and they match the file (an open file says 0)."""
        return self.declared_riff == self.file_size - 8 and self.declared_data == self.data_on_disk

    @property
    def duration(self) -> float:
        frame = self.channels * self.bits // 8
        return self.data_on_disk / (frame * self.sample_rate) if frame and self.sample_rate else 0.0


def read_info(path: Path) -> WavInfo:
    with open(path, "rb") as handle:
        head = handle.read(4096)
        size = handle.seek(0, 2)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise NotWav(f"{path} is not a WAV file")
    offset, fmt = 12, None
    while offset + 8 <= len(head):
        chunk, length = head[offset:offset + 4], struct.unpack("<I", head[offset + 4:offset + 8])[0]
        if chunk == b"fmt " and offset + 8 + 16 <= len(head):
            fmt = struct.unpack("<HHIIHH", head[offset + 8:offset + 24])
        elif chunk == b"data":
            if fmt is None:
                break
            _, channels, rate, _, _, bits = fmt
            riff = struct.unpack("<I", head[4:8])[0]
            return WavInfo(channels, rate, bits, offset + 8, length, size, riff)
        offset += 8 + length + (length & 1)
    raise NotWav(f"{path} has no fmt/data chunks")


def declare_channels(path: Path, channels: int) -> bool:
    """Rewrite the fmt chunk for `channels` interleaved channels; False if already so."""
    info = read_info(path)
    if info.data_offset != 44:
        raise NotWav(f"{path}: unexpected header layout (data at byte {info.data_offset}, not 44)")
    if info.channels == channels:
        return False
    block_align = channels * info.bits // 8
    with open(path, "r+b") as handle:
        # fmt chunk of a 44-byte header: channels at 22, byte rate at 28, block align at 32.
        handle.seek(22)
        handle.write(struct.pack("<H", channels))
        handle.seek(28)
        handle.write(struct.pack("<IH", info.sample_rate * block_align, block_align))
    return True


def mix_into(main: Path, track: Path, spans: list[tuple[float, float]], track_start: float) -> int:
    """Add a mono track into `main` over `spans` (seconds from main's start), in place.

    `track_start` is when the track begins, in seconds from main's start. Both files are
    closed 16-bit PCM at the same rate; a stereo `main` gets the track on both channels.
    Samples are summed and clipped. Returns the number of main frames touched.
    """
    target, source = read_info(main), read_info(track)
    if target.bits != 16 or source.bits != 16 or source.channels != 1 or target.sample_rate != source.sample_rate:
        raise NotWav(f"cannot mix {track.name} into {main.name}: formats differ")
    rate, channels = target.sample_rate, target.channels
    main_frames = target.data_on_disk // (2 * channels)
    track_frames = source.data_on_disk // 2
    touched = 0
    with open(main, "r+b") as out, open(track, "rb") as inp:
        for start, end in spans:
            first = max(int(start * rate), int(track_start * rate), 0)
            last = min(int(end * rate), main_frames, int(track_start * rate) + track_frames)
            if last <= first:
                continue
            inp.seek(source.data_offset + 2 * (first - int(track_start * rate)))
            voice = array("h", inp.read(2 * (last - first)))
            out.seek(target.data_offset + 2 * channels * first)
            mixed = array("h", out.read(2 * channels * (last - first)))
            if sys.byteorder != "little":
                voice.byteswap()
                mixed.byteswap()
            for i, sample in enumerate(voice):
                for c in range(channels):
                    j = i * channels + c
                    mixed[j] = max(-32768, min(32767, mixed[j] + sample))
            if sys.byteorder != "little":
                mixed.byteswap()
            out.seek(target.data_offset + 2 * channels * first)
            out.write(mixed.tobytes())
            touched += last - first
    return touched
