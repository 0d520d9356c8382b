"""``python -m bench.profile RAW [ROOT] [TOP]``: the top entries of a py-spy profile, as in bench/README.md.

RAW is the output of ``py-spy record --format raw`` (one line per distinct stack: frames joined
by ``;``, then a sample count).  Only the stacks through a frame starting with ROOT (default
``run (adapter/pipeline.py``) are counted; each function gets its self share (samples where it
is the innermost frame) and its inclusive share (samples where it is anywhere on the stack).
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

_PREFIX = re.compile(r" \(/[^;]*?/(?:site-packages|lib/python3\.\d+|wt/[^/]+)/")
_LINE = re.compile(r":\d+\)$")


def _frames(stack: str) -> list[str]:
    return [_LINE.sub(")", _PREFIX.sub(" (", frame)) for frame in stack.split(";")]


def top_entries(raw: Path, root: str, top: int) -> tuple[int, list[tuple[str, float]], list[tuple[str, float]]]:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = _frames(stack)
        start = next((i for i, frame in enumerate(frames) if frame.startswith(root)), None)
        if start is None:
            continue
        frames = frames[start:]
        samples = int(count)
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    share = 100 / max(total, 1)
    return (
        total,
        [(f, n * share) for f, n in own.most_common(top)],
        [(f, n * share) for f, n in inclusive.most_common(top)],
    )


def main() -> None:
    raw = Path(sys.argv[1])
    root = sys.argv[2] if len(sys.argv) > 2 else "run (adapter/pipeline.py"
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 15
    total, own, inclusive = top_entries(raw, root, top)
    print(f"{total} samples under {root}\n\n| self | function |\n|---:|---|")
    print("\n".join(f"| {share:.1f}% | `{frame}` |" for frame, share in own))
    print("\n| inclusive | function |\n|---:|---|")
    print("\n".join(f"| {share:.1f}% | `{frame}` |" for frame, share in inclusive))


if __name__ == "__main__":
    main()
