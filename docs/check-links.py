#!/usr/bin/env python3
"""Checks the user guide's internal links: every relative link in docs/src/*.md names a page
that exists and, with a #fragment, a heading on that page (mdBook's anchor rules: lower case,
spaces to dashes, other punctuation dropped); and every test the security page names as the
proof of a claim (`file::test`, `::test`, `{a,b}::test`) is a name defined in the project's Rust
sources. Exits 1 listing the broken ones."""
import glob
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


def missing_tests():
    """Names cited in security.md's `…::name` references that no Rust source defines."""
    text = open(os.path.join(SRC, "security.md"), encoding="utf-8").read()
    cited = set()
    for ref in re.findall(r"`([^`]*::[^`]*)`", text):
        for name in re.sub(r"[{}]", "", ref.split("::")[-1]).split(","):
            if re.fullmatch(r"[a-z][a-z_0-9]+", name.strip()):
                cited.add(name.strip())
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sources = "".join(
        open(f, encoding="utf-8", errors="ignore").read()
        for f in glob.glob(os.path.join(root, "**", "*.rs"), recursive=True)
        if "/target/" not in f
    )
    return sorted(n for n in cited if not re.search(rf"\b(fn|mod|macro_rules!)\s+{n}\b|\b{n}\s*[,!(]", sources)), len(cited)


def main():
    missing, cited = missing_tests()
    broken = [f"security.md: no test or module named {n}" for n in missing]
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
    print(f"{len(pages)} pages, {cited} tests cited by the security page, {len(broken)} broken")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
