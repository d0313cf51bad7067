# TrackDiffusion, image-to-video: Stable Video Diffusion's UNet with its temporal-decoder VAE and
# CLIP image encoder from a local diffusers folder (docs/svd.md), extended with gated grounding
# and Instance Enhancers. Trained: temporal layers, tracklet encoder, grounding, enhancers;
# frozen: spatial layers, VAE, image encoder. Category names are embedded by a CLIP text model
# of their own folder (SVD has none). Leaf configs set class_names.
pretrained = 'data/pretrained/stable-video-diffusion-img2vid'
category_text_encoder = 'data/pretrained/clip-vit-large-patch14'
token_dim = 1024  # SVD's cross-attention width

model = dict(
    type='TrackDiffusionI2V',
    data_preprocessor=dict(
        type='SVDDataPreprocessor',
        vae=dict(pretrained=pretrained),
        image_encoder=dict(pretrained=pretrained)),
    generator=dict(
        type='PretrainedTrackletUNetSpatioTemporal',
        pretrained=pretrained,
        grounding_context_dim=token_dim,
        enhancer_track_dim=128),
    tracklet_encoder=dict(
        type='TrackletEncoder',
        token_dim=token_dim,
        track_dim=128,
        category_embedding=dict(
            type='CLIPCategoryEmbedding', pretrained=category_text_encoder, class_names=None)),
    noise_scheduler=dict(
        type='EulerDiscreteScheduler', from_pretrained=pretrained, subfolder='scheduler'),
    sampler='EulerDiscreteScheduler',
    sigma_log_mean=0.7,
    sigma_log_std=1.6,
    fps=7,
    motion_bucket_id=127,
    noise_aug_strength=0.02,
    image_dropout=0.1,
    tracklet_dropout=0.1,
    foreground_weight=2.0,
    trainable=('generator.temporal', 'generator.grounding', 'generator.enhancer',
               'tracklet_encoder'),
    gradient_checkpointing=True,
    num_inference_steps=25,
    guidance_scale=3.0,
    min_guidance_scale=1.0)
