"""Training memory per GPU of a config's model: see :mod:`mmtrackgen.benchmarks.memory_model`.

    python tools/analysis/memory_model.py configs/trackdiff/ytvis.py [--batch-size 1] [--json OUT]
"""
from mmtrackgen.benchmarks.memory_model import main

if __name__ == '__main__':
    main()
