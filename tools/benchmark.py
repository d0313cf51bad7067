"""Benchmarks of TrackDiffusion, written as JSON: see :mod:`mmtrackgen.benchmarks.suites`.

    python tools/benchmark.py --suite conditioning [--suite scaling ...|--suite all] \
        [--size tiny|mid|micro] [--repeats R] [--warmup W] [--device cpu|cuda] \
        [--dtype fp32|bf16] [--threads T] --out FILE.json [--plots DIR]
    python tools/benchmark.py --suite sampling --checkpoint CKPT [--config CONFIG] \
        [--num-clips 16] [--solvers ddim:50,dpmpp:20] --out FILE.json
"""
from mmtrackgen.benchmarks.suites import main

if __name__ == '__main__':
    main()
