#!/usr/bin/env python3
"""Checks the user guide's internal links: every relative link in docs/src/*.md names a page
that exists and, with a #fragment, a heading on that page (mdBook's anchor rules: lower case,
spaces to dashes, other punctuation dropped). Exits 1 listing the broken ones."""
import os
import re
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "src")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def anchors(path):
    text = FENCE.sub("", open(path, encoding="utf-8").read())
    out = set()
    for line in text.splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:
            title = re.sub(r"`|\*|_(?=\W)|\[|\]\([^)]*\)", "", m.group(1)).strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


def main():
    broken = []
    pages = sorted(f for f in os.listdir(SRC) if f.endswith(".md"))
    for page in pages:
        text = FENCE.sub("", open(os.path.join(SRC, page), encoding="utf-8").read())
        text = re.sub(r"`[^`\n]*`", "", text)
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, fragment = target.partition("#")
            dest = os.path.normpath(os.path.join(SRC, file)) if file else os.path.join(SRC, page)
            if not os.path.isfile(dest):
                broken.append(f"{page}: {target} (no such page)")
            elif fragment and dest.endswith(".md") and fragment not in anchors(dest):
                broken.append(f"{page}: {target} (no such heading)")
    for b in broken:
        print(b)
    print(f"{len(pages)} pages, {len(broken)} broken links")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
