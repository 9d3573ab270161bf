#!/usr/bin/env python3
"""Check the documentation (make lint): README.md is at most 200 lines, and every relative link
of README.md, docs/*.md and deploy/README.md points at a file or folder that exists and, when it
names a heading (`file.md#anchor`), at a heading of that file (GitHub's anchor rules).

Usage: python3 scripts/check_docs.py [ROOT]   (default: the folder above scripts/)
Prints one line per broken link (file:line: link: why) and exits 1 when there is any."""

import re
import sys
from pathlib import Path

MAX_README_LINES = 200
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def prose_lines(text):
    """(line number, line without inline code) of every line outside fenced code blocks."""
    fenced = False
    for n, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield n, re.sub(r"`[^`]*`", "", line)


def anchors(path):
    """The heading anchors GitHub makes for a Markdown file: lowercase, punctuation dropped
    (letters, digits, `-` and `_` kept), spaces to `-`, repeats numbered -1, -2, …"""
    seen, out = {}, set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if fenced or not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        out.add(slug if count == 0 else f"{slug}-{count}")
    return out


def check(root):
    problems = []
    readme = root / "README.md"
    lines = len(readme.read_text(encoding="utf-8").splitlines())
    if lines > MAX_README_LINES:
        problems.append(f"README.md: {lines} lines, at most {MAX_README_LINES} expected")
    files = [readme, root / "deploy" / "README.md", *sorted((root / "docs").glob("*.md"))]
    for md in files:
        for n, line in prose_lines(md.read_text(encoding="utf-8")):
            for target in LINK.findall(line):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                    continue  # http:, https:, mailto: …: not checked here
                where = f"{md.relative_to(root)}:{n}: {target}"
                file_part, _, anchor = target.partition("#")
                dest = (md.parent / file_part).resolve() if file_part else md
                if not dest.exists():
                    problems.append(f"{where}: no such file or folder")
                elif anchor and (dest.suffix != ".md" or anchor not in anchors(dest)):
                    problems.append(f"{where}: no heading #{anchor} in {dest.name}")
    return problems


def main():
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)
    problems = check(root.resolve())
    for p in problems:
        print(p)
    if problems:
        sys.exit(1)
    print("docs: README.md within 200 lines, every relative link resolves")


if __name__ == "__main__":
    main()
