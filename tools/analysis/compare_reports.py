"""The four figures that say whether generated clips could stand in for real ones, side by side.

    python tools/analysis/compare_reports.py GENERATED_REPORT.json REAL_REPORT.json [--out FILE.md]

Both reports come from tools/evaluate_generated.py (the real one on real clips, the reference).
Prints a Markdown table: box alignment (iou50), identity HOTA, appearance consistency and
category accuracy, generated vs real, and their ratio.
"""
import argparse
import json

FIGURES = (('alignment iou50', 'alignment', 'iou50'), ('identity HOTA', 'identity', 'HOTA'),
           ('appearance consistency', 'appearance', 'appearance_consistency'),
           ('category accuracy', 'category', 'accuracy'))


def figure(report: dict, group: str, key: str):
    value = (report.get(group) or {}).get(key)
    return float(value) if isinstance(value, (int, float)) else None


def compare(generated: dict, real: dict) -> str:
    lines = ['| figure | generated | real | generated / real |', '| --- | --- | --- | --- |']
    for name, group, key in FIGURES:
        g, r = figure(generated, group, key), figure(real, group, key)
        cell = lambda v: 'n/a' if v is None else f'{v:.3f}'  # noqa: E731
        ratio = f'{g / r:.0%}' if g is not None and r else 'n/a'
        lines.append(f'| {name} | {cell(g)} | {cell(r)} | {ratio} |')
    return '\n'.join(lines) + '\n'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('generated', help='report of the generated clips')
    parser.add_argument('real', help='report of real clips (the reference)')
    parser.add_argument('--out', help='also write the table here')
    args = parser.parse_args(argv)
    with open(args.generated) as f, open(args.real) as g:
        table = compare(json.load(f), json.load(g))
    print(table, end='')
    if args.out:
        with open(args.out, 'w') as f:
            f.write(table)
    return table


if __name__ == '__main__':
    main()
