"""Peak memory of indexing and matching long videos (issue P6: memory stays bounded).

    python scripts/measure_memory.py [--minutes 10 60] [--out docs/memory.md]

For each length, writes a 320x240, 15 fps H.264 video with AAC audio made from ffmpeg's lavfi sources
(a moving test pattern, and pink noise under a tone sweep), then runs, each in a fresh process:
``fingerprint index`` of that one file (a reference), and ``fingerprint match`` of it as a
query against a small index. It reports each process's peak resident memory (ru_maxrss).
"""
import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FP = [sys.executable, "-m", "fingerprint"]


def peak_rss_mb(cmd) -> tuple:
    t = time.perf_counter()
    code = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(p.returncode)")
    out = subprocess.run([sys.executable, "-c", code, *map(str, cmd)], cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed: {out.stderr.strip()}")
    return int(out.stdout.strip().splitlines()[-1]) / 1024.0, time.perf_counter() - t


def make_video(path: Path, minutes: float) -> Path:
    d = minutes * 60
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y",
                    "-f", "lavfi", "-i", f"testsrc2=s=320x240:r=15:d={d}",
                    "-f", "lavfi", "-i", f"anoisesrc=c=pink:a=0.05:d={d}:r=16000",
                    "-f", "lavfi", "-i", f"sine=f=440:beep_factor=4:d={d}:r=16000",
                    "-filter_complex", "[1:a][2:a]amix=inputs=2[a]", "-map", "0:v", "-map", "[a]",
                    "-c:v", "libx264", "-preset", "ultrafast", "-crf", "28", "-c:a", "aac", "-b:a", "64k",
                    str(path)], check=True)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, nargs="+", default=[10, 60])
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        small = tmp / "small"
        small.mkdir()
        make_video(small / "R1.mp4", 0.5)
        base, _ = peak_rss_mb([*FP, "index", small, "-o", tmp / "small_index"])
        rows.append(("index a 30 s reference (baseline: models and libraries loaded)", base, 0.0))
        print(rows[-1], flush=True)
        for m in a.minutes:
            d = tmp / f"m{int(m)}"
            d.mkdir()
            v = make_video(d / f"long{int(m)}.mp4", m)
            rss, t = peak_rss_mb([*FP, "index", d, "-o", tmp / f"index{int(m)}"])
            rows.append((f"index a {m:g}-minute reference", rss, t))
            print(rows[-1], flush=True)
            for mod in ("audio", "both"):
                rss, t = peak_rss_mb([*FP, "match", v, "-i", tmp / "small_index", "-o", tmp / f"m{int(m)}.csv",
                                      "--modality", mod])
                rows.append((f"match a {m:g}-minute query ({mod})", rss, t))
                print(rows[-1], flush=True)
    lines = ["| run | peak RSS (MB) | wall time (s) |", "|---|---|---|"]
    lines += [f"| {r[0]} | {r[1]:.0f} | {r[2]:.0f} |" for r in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        Path(a.out).write_text(text)


if __name__ == "__main__":
    main()
