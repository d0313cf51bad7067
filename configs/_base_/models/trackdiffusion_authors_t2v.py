# The authors' released text-to-video TrackDiffusion (`TrackDiffusion_Pretrain`, trained from
# GLIGEN 1.4) expressed with our modules' options, so its converted weights load strictly
# (tools/convert_authors_checkpoint.py; docs/pretrained.md#the-authors-released-weights).
# Their VAE, text encoder, tokenizer and scheduler are Stable Diffusion 1.5's (their demo's).
# The generator is built from these arguments, not from a folder: the converted checkpoint holds
# every generator weight.
pretrained = 'data/pretrained/stable-diffusion-v1-5'
token_dim = 768  # GLIGEN's positive_len = CLIP ViT-L/14's width = cross_attention_dim

model = dict(
    type='TrackDiffusion',
    data_preprocessor=dict(
        type='TrackDiffusionDataPreprocessor',
        vae=dict(pretrained=pretrained),
        text_encoder=dict(pretrained=pretrained),
        vae_slicing=True,
        vae_tiling=False),
    generator=dict(
        type='TrackletUNet3D',
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        norm_num_groups=32,
        cross_attention_dim=token_dim,
        attention_head_dim=64,  # temporal layers: ModelScope's 64-channel heads
        spatial_attention_heads=8,  # spatial layers and their fusers/injectors: SD's 8 heads
        grounding_context_dim=token_dim,  # `fuser` in every spatial block, as GLIGEN
        grounding_mask_invisible=False,  # GLIGEN attends to all slots, null tokens included
        enhancer_track_dim=128,  # `injector` in every decoder block
        enhancer_num_heads=8,
        enhancer_placement='transformer_block',
        enhancer_options=dict(
            fuse_layers=3,
            frame_positions=False,
            frame_ff=False,
            norm_instances=False,
            mask_invisible=False,
            roi_aligned=False),
        temporal_frame_embeddings=16),  # `open_time_embedding=learnable_frame`: at most 16 frames
    tracklet_encoder=dict(
        type='TrackletEncoder',  # their `position_net`
        token_dim=token_dim,
        hidden_dim=512,
        track_dim=128,
        num_freqs=8,
        box_encoding='gligen',
        identity_embedding='table',
        num_identity_slots=20,  # their `instance_embedding`; clips are padded to 20 slots
        track_block='attention',
        track_heads=4,
        track_head_dim=32,
        track_frame_positions=False,
        track_out_norm=False,
        # Their pipeline embeds the bare class name (CLIP pooled output); leaf configs set names.
        category_embedding=dict(
            type='CLIPCategoryEmbedding', pretrained=pretrained, class_names=None, prompt='{}')),
    noise_scheduler=dict(type='DDPMScheduler', from_pretrained=pretrained, subfolder='scheduler'),
    sampler='DDIMScheduler',
    prediction_type='epsilon',
    foreground_weight=2.0,
    caption_dropout=0.1,
    tracklet_dropout=0.1,
    trainable=('generator.temporal', 'generator.enhancer', 'tracklet_encoder'),  # their `temp`
    train_closed_gates=False,  # the converted checkpoint opens the grounding gates after build
    gradient_checkpointing=True,
    compile_generator=None,
    num_inference_steps=50,
    guidance_scale=3.0)  # plain guidance; theirs rescales it per step (docs/pretrained.md)
