"""Compares two CSV result files row by row, as multisets (result order is not defined for
parallel engines). Decimals are compared to 3 places; everything else as text.

Usage: compare.py a.csv b.csv   (exit status 1 on any difference)
"""
import csv
import sys
from collections import Counter
from decimal import Decimal, InvalidOperation


def norm(cell):
    try:
        if "." in cell and not any(c in cell for c in " -:"):
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
