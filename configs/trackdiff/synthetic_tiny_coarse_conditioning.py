# The embedded default with the tracklet layers at the coarser resolutions only: grounding in the
# 8x8-latent blocks and the 4x4 mid block (down_blocks.1, mid_block, up_blocks.1) and one Instance
# Enhancer (up_blocks.1), instead of grounding at 16x16 and 8x8 and enhancers in both attention
# decoder blocks. Cheaper per step; compared with the default at equal wall-clock in
# docs/training.md ("Which conditioning layout").
_base_ = ['./synthetic_tiny.py']
model = dict(
    generator=dict(
        grounding_blocks=['down_blocks.1', 'mid_block', 'up_blocks.1'],
        enhancer_blocks=['up_blocks.1']))
