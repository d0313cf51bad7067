# TrackDiffusion, text-to-video: a ModelScope-layout UNet3D with its VAE and text encoder from a
# local diffusers folder (README.md#pretrained-weights), extended with gated grounding and
# Instance Enhancers. Trained: temporal layers, tracklet encoder (identity embedding included),
# enhancers; frozen: spatial layers, grounding, VAE, text encoder. Leaf configs set class_names.
pretrained = 'data/pretrained/text-to-video-ms-1.7b'
token_dim = 768

model = dict(
    type='TrackDiffusion',
    data_preprocessor=dict(
        type='TrackDiffusionDataPreprocessor',
        vae=dict(pretrained=pretrained),
        text_encoder=dict(pretrained=pretrained)),
    generator=dict(
        type='PretrainedTrackletUNet3D',
        pretrained=pretrained,
        grounding_context_dim=token_dim,
        enhancer_track_dim=128),
    tracklet_encoder=dict(
        type='TrackletEncoder',
        token_dim=token_dim,
        track_dim=128,
        category_embedding=dict(
            type='CLIPCategoryEmbedding', pretrained=pretrained, class_names=None)),
    noise_scheduler=dict(type='DDPMScheduler', from_pretrained=pretrained, subfolder='scheduler'),
    sampler='DDIMScheduler',
    prediction_type='epsilon',
    foreground_weight=2.0,
    caption_dropout=0.1,
    tracklet_dropout=0.1,
    trainable=('generator.temporal', 'generator.enhancer', 'tracklet_encoder'),
    gradient_checkpointing=True,
    num_inference_steps=50,
    guidance_scale=7.5)
