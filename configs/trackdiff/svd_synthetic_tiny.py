# The image-to-video generator on the synthetic world, small enough for 2 CPU cores: the same
# data, schedule and hooks as synthetic_tiny_pixel32.py, with a ~2M-parameter SVD-layout UNet in pixel
# space (the first frame concatenated on channels, a learned token as the image context).
_base_ = ['./synthetic_tiny_pixel32.py']

model = dict(
    _delete_=True,
    type='TrackDiffusionI2V',
    data_preprocessor=dict(type='SVDDataPreprocessor'),  # pixel space, no image encoder
    generator=dict(
        type='TrackletUNetSpatioTemporal',
        sample_size=32,
        in_channels=6,  # noisy frames ; first frame
        out_channels=3,
        # attention (and with it grounding and the enhancer) only at 16x16 and 8x8
        down_block_types=('DownBlockSpatioTemporal', 'CrossAttnDownBlockSpatioTemporal',
                          'CrossAttnDownBlockSpatioTemporal'),
        up_block_types=('CrossAttnUpBlockSpatioTemporal', 'CrossAttnUpBlockSpatioTemporal',
                        'UpBlockSpatioTemporal'),
        block_out_channels=(32, 64, 64),  # multiples of 32: SVD's blocks use 32 norm groups
        layers_per_block=1,
        num_attention_heads=(4, 8, 8),
        cross_attention_dim=64,
        addition_time_embed_dim=32,
        projection_class_embeddings_input_dim=96,
        num_frames=8,
        grounding_context_dim=64,
        enhancer_track_dim=32,
        token_position_freqs=4,
        ground_within_boxes=True,
        gate_init=1.0),
    tracklet_encoder={{_base_.model.tracklet_encoder}},
    sigma_log_mean=-1.2,  # EDM's image-space default: pixels need lower noise than SVD latents
    sigma_log_std=1.2,
    image_dropout=0.1,
    tracklet_dropout=0.1,
    num_inference_steps=25,
    guidance_scale=2.0)
