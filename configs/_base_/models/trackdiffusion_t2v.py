# TrackDiffusion, text-to-video: a ModelScope-layout UNet3D with its VAE and text encoder from a
# local diffusers folder (README.md#pretrained-weights), extended with gated grounding and
# Instance Enhancers. Trained: temporal layers, tracklet encoder (identity embedding included),
# enhancers; frozen: spatial layers, VAE, text encoder, and the grounding when GLIGEN weights
# initialise it (without them its gates start closed and it trains: frozen it would never open).
# Leaf configs set class_names.
# Folders (docs/pretrained.md): `pretrained` holds unet/ (a UNet3D: ModelScope, ZeroScope), vae/,
# text_encoder/, tokenizer/, scheduler/; `grounding_weights`, when set, a GLIGEN folder whose
# gated-attention (fuser) weights initialise the grounding.
pretrained = 'data/pretrained/text-to-video-ms-1.7b'
grounding_weights = None  # e.g. 'data/pretrained/gligen-1-4-generation-text-box'
token_dim = 768

model = dict(
    type='TrackDiffusion',
    data_preprocessor=dict(
        type='TrackDiffusionDataPreprocessor',
        vae=dict(pretrained=pretrained),
        text_encoder=dict(pretrained=pretrained),
        vae_slicing=True,  # sampling decodes one frame at a time
        vae_tiling=False),  # set for frames larger than the VAE's 512x512
    generator=dict(
        type='PretrainedTrackletUNet3D',
        pretrained=pretrained,
        weights_format='modelscope',
        grounding_weights=grounding_weights,
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
    compile_generator=None,  # e.g. dict(mode='max-autotune') on GPUs
    num_inference_steps=50,
    guidance_scale=7.5)
