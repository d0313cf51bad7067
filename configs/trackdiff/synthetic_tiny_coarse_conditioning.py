# The embedded default with the tracklet layers at the coarsest resolution only: grounding in the
# 8x8 blocks (down_blocks.2, mid_block, up_blocks.0) and one Instance Enhancer (up_blocks.0),
# instead of grounding at 16x16 and 8x8 and enhancers in both decoder blocks. Against a bare
# UNet's training step it costs 1.02x in time and 1.07x in memory (the default: 1.29x and
# 1.29x), for about 3.6% lower box alignment (docs/benchmarks.md, "Cheaper conditioning").
_base_ = ['./synthetic_tiny.py']
model = dict(
    generator=dict(
        grounding_blocks=['down_blocks.2', 'mid_block', 'up_blocks.0'],
        enhancer_blocks=['up_blocks.0']))
