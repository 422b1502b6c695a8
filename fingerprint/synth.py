"""Synthesized, real-world-like media for tests, benchmarks and the demo data set.

Everything is deterministic for a seed. Different seeds give unrelated content (different notes,
rhythms and timbres), which tests and benchmarks rely on for their "no match" cases.

>>> x = music(10.0, sr_hz=16000, seed=3)        # 10 s of polyphonic "music", float32 in [-1, 1]
>>> write_wav("a.wav", x, 16000)                # doctest: +SKIP
"""
from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path
from typing import Optional, Union

import numpy as np


def _env(n: int, sr: int, attack_s: float, release_s: float) -> np.ndarray:
    e = np.ones(n, np.float32)
    a, r = min(n, int(attack_s * sr)), min(n, int(release_s * sr))
    if a:
        e[:a] = np.linspace(0, 1, a)
    if r:
        e[n - r:] *= np.exp(-np.linspace(0, 5, r))
    return e


def music(duration_s: float, sr_hz: int = 16000, seed: int = 0) -> np.ndarray:
    """Polyphonic synthesized music ``(round(duration_s * sr_hz),)`` float32, peak 0.9.

    Two to three voices of notes with random pitch (MIDI 40-88), length (0.08-0.6 s) and
    harmonic timbre, plus noise-burst percussion, so the spectrogram has the mix of tonal
    peaks and transients that real recordings have.
    """
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * sr_hz))
    out = np.zeros(n, np.float32)
    for voice in range(int(rng.integers(2, 4))):
        t = 0.0
        lo = int(rng.integers(40, 64))
        n_harm = int(rng.integers(2, 7))
        decay = rng.uniform(0.3, 0.9)
        while t < duration_s:
            dur = float(rng.uniform(0.08, 0.6))
            if rng.random() < 0.15:  # rest
                t += dur
                continue
            midi = lo + int(rng.integers(0, 24))
            f0 = 440.0 * 2 ** ((midi - 69) / 12.0)
            i0, i1 = int(t * sr_hz), min(n, int((t + dur) * sr_hz))
            if i1 <= i0:
                break
            tt = np.arange(i1 - i0) / sr_hz
            note = np.zeros(i1 - i0, np.float32)
            for h in range(1, n_harm + 1):
                if f0 * h < sr_hz / 2 - 200:
                    note += (decay ** (h - 1)) * np.sin(2 * np.pi * f0 * h * tt + rng.uniform(0, 6.28)).astype(np.float32)
            out[i0:i1] += rng.uniform(0.3, 1.0) * note * _env(i1 - i0, sr_hz, 0.01, min(dur, 0.2))
            t += dur
    # Percussion: short filtered noise bursts on a loose grid.
    beat = rng.uniform(0.25, 0.6)
    t = float(rng.uniform(0, beat))
    while t < duration_s:
        i0 = int(t * sr_hz)
        m = min(n - i0, int(0.08 * sr_hz))
        if m > 0 and rng.random() < 0.7:
            burst = rng.standard_normal(m).astype(np.float32)
            k = int(rng.integers(1, 8))
            burst = np.convolve(burst, np.ones(k) / k, mode="same").astype(np.float32)
            out[i0:i0 + m] += 0.5 * burst * np.exp(-np.linspace(0, 6, m)).astype(np.float32)
        t += beat
    peak = float(np.abs(out).max()) or 1.0
    return (0.9 * out / peak).astype(np.float32)


def speech(text: str, sr_hz: int = 16000, voice: str = "en", speed_wpm: int = 160,
           pitch: int = 50) -> Optional[np.ndarray]:
    """Text spoken by espeak-ng as float32 at ``sr_hz``; None when espeak-ng is not installed.
    ``voice`` is an espeak voice, optionally with a variant (``"en-us+f3"``); ``pitch`` 0-99."""
    exe = shutil.which("espeak-ng") or shutil.which("espeak")
    if exe is None:
        return None
    wav = subprocess.run([exe, "-v", voice, "-s", str(speed_wpm), "-p", str(int(pitch)), "--stdout", text],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True).stdout
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", "-", "-ac", "1", "-ar", str(sr_hz), "-f", "f32le", "-"],
                         input=wav, stdout=subprocess.PIPE, check=True).stdout
    return np.frombuffer(raw, "<f4").astype(np.float32)


def write_wav(path: Union[str, Path], samples: np.ndarray, sr_hz: int) -> Path:
    """Write mono float samples (clipped to [-1, 1]) as 16-bit PCM WAV."""
    path = Path(path)
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sr_hz))
        w.writeframes(pcm.tobytes())
    return path


def ffmpeg(*args: str) -> None:
    """Run ffmpeg quietly; raise RuntimeError with its message if it fails."""
    proc = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        raise RuntimeError("ffmpeg " + " ".join(args) + ": " + proc.stderr.decode(errors="replace").strip())


#: Audio edits, by name: (speed factor the edit applies, what it does). Speed is reference seconds
#: per query second (1.25: the copy plays 25% faster and lasts 1/1.25 as long).
AUDIO_EDITS = {
    "none": (1.0, "untouched (PCM WAV)"),
    "aac64": (1.0, "re-encoded AAC 64 kbit/s"),
    "mp3": (1.0, "re-encoded MP3 64 kbit/s"),
    "volume-12db": (1.0, "volume x0.25"),
    "noise-snr10": (1.0, "white noise added at SNR 10 dB"),
    "mix-0db": (1.0, "unrelated music mixed in at the same loudness"),
    "lowpass4k": (1.0, "low-pass at 4 kHz"),
    "atempo0.8": (0.8, "tempo x0.8, pitch kept (atempo)"),
    "atempo0.9": (0.9, "tempo x0.9, pitch kept (atempo)"),
    "atempo1.1": (1.1, "tempo x1.1, pitch kept (atempo)"),
    "atempo1.25": (1.25, "tempo x1.25, pitch kept (atempo)"),
    "asetrate0.9": (0.9, "resampled x0.9: slower and lower (asetrate)"),
    "asetrate1.1": (1.1, "resampled x1.1: faster and higher (asetrate)"),
}


def _ffmpeg_filter(samples: np.ndarray, sr_hz: int, afilter: str) -> np.ndarray:
    raw = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "f32le", "-ar", str(sr_hz), "-ac", "1",
                          "-i", "-", "-af", afilter, "-ac", "1", "-ar", str(sr_hz), "-f", "f32le", "-"],
                         input=np.asarray(samples, "<f4").tobytes(), stdout=subprocess.PIPE, check=True).stdout
    return np.frombuffer(raw, "<f4").astype(np.float32)


def speed_edit(samples: np.ndarray, sr_hz: int, edit: str) -> np.ndarray:
    """Apply the speed part of an :data:`AUDIO_EDITS` edit (identity for the others)."""
    if edit.startswith("atempo"):
        return _ffmpeg_filter(samples, sr_hz, f"atempo={float(edit[6:])}")
    if edit.startswith("asetrate"):
        f = float(edit[8:])
        return _ffmpeg_filter(samples, sr_hz, f"asetrate={int(round(sr_hz * f))},aresample={sr_hz}")
    return samples


def signal_edit(samples: np.ndarray, sr_hz: int, edit: str, seed: int = 0) -> np.ndarray:
    """Apply the signal part of an :data:`AUDIO_EDITS` edit (identity for codecs and speeds)."""
    rng = np.random.default_rng(seed + 7919)
    x = np.asarray(samples, np.float32)
    if edit == "volume-12db":
        return x * 0.25
    if edit == "noise-snr10":
        rms = float(np.sqrt(np.mean(x ** 2))) or 1e-3
        return x + rng.standard_normal(x.size).astype(np.float32) * rms / np.sqrt(10.0)
    if edit == "mix-0db":
        other = music(x.size / sr_hz + 0.1, sr_hz, seed=seed + 104729)[:x.size]
        other *= (np.sqrt(np.mean(x ** 2)) / max(np.sqrt(np.mean(other ** 2)), 1e-6))
        y = x + other
        return y / max(1.0, float(np.abs(y).max()))
    if edit == "lowpass4k":
        return _ffmpeg_filter(x, sr_hz, "lowpass=f=4000,lowpass=f=4000")
    return x


def encode_audio(path: Union[str, Path], samples: np.ndarray, sr_hz: int, edit: str = "none") -> Path:
    """Write ``samples`` to ``path`` with the codec an edit asks for (``.m4a``/``.mp3``/``.wav``
    is chosen from the edit; ``path``'s suffix is replaced). Returns the written path."""
    path = Path(path)
    if edit == "aac64":
        out = path.with_suffix(".m4a")
        codec = ["-c:a", "aac", "-b:a", "64k"]
    elif edit == "mp3":
        out = path.with_suffix(".mp3")
        codec = ["-c:a", "libmp3lame", "-b:a", "64k"]
    else:
        return write_wav(path.with_suffix(".wav"), samples, sr_hz)
    wav = write_wav(path.with_suffix(".src.wav"), samples, sr_hz)
    try:
        ffmpeg("-i", str(wav), *codec, str(out))
    finally:
        wav.unlink()
    return out
