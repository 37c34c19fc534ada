"""Summarise py-spy raw (collapsed) stacks: where the samples go, by function.

``python -m bench.profile FILE.txt [--top 20] [--focus scheduler/,workers/]``
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _short(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    file = m.group("file")
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{m.group('func')} ({file})"


def summarise(path: Path, top: int = 20, focus: tuple[str, ...] = ()) -> str:
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";")]
        # py-spy puts "process <pid>:..." and thread frames first; skip non-code frames.
        frames = [f for f in frames if "(" in f]
        if not frames:
            continue
        total += count
        self_time[frames[-1]] += count
        for f in set(frames):
            inclusive[f] += count
    if not total:
        return f"{path}: no samples"
    out = [f"{path.name}: {total} samples"]
    out.append("  inclusive (time in the function and what it calls):")
    shown = 0
    for func, n in inclusive.most_common():
        if focus and not any(x in func for x in focus):
            continue
        out.append(f"    {100 * n / total:5.1f}%  {func}")
        shown += 1
        if shown >= top:
            break
    out.append("  self (time in the function's own code):")
    for func, n in self_time.most_common(top):
        out.append(f"    {100 * n / total:5.1f}%  {func}")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.profile")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--top", type=int, default=20)
    p.add_argument("--focus", default="", help="comma-separated substrings of files to keep in the inclusive list")
    args = p.parse_args()
    focus = tuple(x for x in args.focus.split(",") if x)
    for f in args.files:
        print(summarise(f, args.top, focus))


if __name__ == "__main__":
    main()
