# svd_synthetic_tiny shrunk for tests: 16x16 frames, 4-frame clips, a micro SVD UNet.
_base_ = ['../../configs/trackdiff/svd_synthetic_tiny.py']

num_frames = 4

model = dict(
    generator=dict(
        sample_size=16,
        down_block_types=('CrossAttnDownBlockSpatioTemporal', 'DownBlockSpatioTemporal'),
        up_block_types=('UpBlockSpatioTemporal', 'CrossAttnUpBlockSpatioTemporal'),
        block_out_channels=(32, 32),
        num_attention_heads=(2, 2),
        cross_attention_dim=16,
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=24,
        num_frames=4,
        grounding_context_dim=16,
        enhancer_track_dim=8),
    tracklet_encoder=dict(token_dim=16, track_dim=8, track_heads=2),
    num_inference_steps=2)
test_pipeline = [
    dict(type='LoadTrackletClip'),
    dict(type='ClipResize', scale=(16, 16)),
    dict(type='AssignInstanceSlots', num_slots=4),
    dict(type='PackClipInputs'),
]
