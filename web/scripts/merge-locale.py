"""Merge a JSON fragment into a locale file (keys nested), keeping the file's order and tabs."""

import json
import sys

target, fragment = sys.argv[1], sys.argv[2]
with open(target, encoding="utf-8") as f:
    data = json.load(f)
with open(fragment, encoding="utf-8") as f:
    extra = json.load(f)


def merge(into: dict, new: dict) -> None:
    for key, value in new.items():
        if isinstance(value, dict):
            merge(into.setdefault(key, {}), value)
        else:
            into[key] = value


merge(data, extra)
with open(target, "w", encoding="utf-8") as f:
    json.dump(data, f, ensure_ascii=False, indent="\t")
    f.write("\n")
