"""Compares two CSV result files row by row, as multisets (result order is not defined for
parallel engines). Decimals are compared to 3 places; everything else as text.

Usage: compare.py a.csv b.csv   (exit status 1 on any difference)
"""
import csv
import re
import sys
from collections import Counter
from decimal import Decimal, InvalidOperation


TS = re.compile(r"^(\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?$")


def norm(cell):
    m = TS.match(cell)
    if m:  # timestamps: always with milliseconds ("... 00:00:00" and "... 00:00:00.000" agree)
        return f"{m.group(1).replace('T', ' ')}.{(m.group(2) or '').ljust(3, '0')[:3]}"
    # Numbers compare by value to 3 places: Flink's CSV writes DECIMAL 908.000 as "908".
    if cell and (cell[0].isdigit() or cell[0] == "-") and all(c.isdigit() or c in ".-+eE" for c in cell):
        try:
            return str(Decimal(cell).quantize(Decimal("0.001")))
        except InvalidOperation:
            pass
    return cell


def load(path):
    with open(path, newline="") as f:
        r = csv.reader(f)
        header = next(r)
        return header, Counter(tuple(norm(c) for c in row) for row in r)


def main():
    (ha, a), (hb, b) = load(sys.argv[1]), load(sys.argv[2])
    if ha != hb:
        print(f"headers differ: {ha} vs {hb}")
        sys.exit(1)
    only_a, only_b = a - b, b - a
    print(f"rows: {sum(a.values())} vs {sum(b.values())}; "
          f"only in first: {sum(only_a.values())}, only in second: {sum(only_b.values())}")
    for row in list(only_a.elements())[:5]:
        print("  first only: ", row)
    for row in list(only_b.elements())[:5]:
        print("  second only:", row)
    sys.exit(1 if only_a or only_b else 0)


if __name__ == "__main__":
    main()
